"""Choose a page's character encoding and decode it.

The order follows the HTML standard's encoding sniffing: a byte order mark, then the
charset parameter of the HTTP Content-Type header, then a ``<meta>`` declaration near
the start of the page, then UTF-8. requests' own fallback for ``text/*`` without a
charset is ISO-8859-1, which turns UTF-8 pages into mojibake, so it is never used.
"""

from __future__ import annotations

import codecs
import logging

log = logging.getLogger(__name__)

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

# Labels that the WHATWG Encoding Standard maps to another decoder: pages labelled
# ISO-8859-1 or ASCII are decoded as windows-1252, as browsers do.
_WHATWG_ALIASES = {
    "iso-8859-1": "windows-1252",
    "iso8859-1": "windows-1252",
    "latin-1": "windows-1252",
    "latin1": "windows-1252",
    "l1": "windows-1252",
    "us-ascii": "windows-1252",
    "ascii": "windows-1252",
    "iso-8859-9": "windows-1254",
    "latin5": "windows-1254",
    "tis-620": "windows-874",
}


_NOT_CHARSETS = frozenset({"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"})


def decode_html(content: bytes, content_type: str | None) -> tuple[str, str, str]:
    """Decode ``content`` and return the text, the codec name and where it came from.

    The last item is ``bom``, ``header``, ``meta`` or ``default``. Bytes that are
    invalid in the chosen encoding become U+FFFD, which the parser rejects if it
    lands in the table.
    """
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            return content[len(bom):].decode(encoding, errors="replace"), encoding, "bom"
    encoding = _header_charset(content_type)
    origin = "header"
    if encoding is None:
        encoding = _meta_charset(content)
        origin = "meta"
    if encoding is None:
        encoding, origin = "utf-8", "default"
    try:
        return content.decode(encoding, errors="replace"), encoding, origin
    except (UnicodeError, ValueError, LookupError) as error:
        log.warning("cannot decode as %s (%s); using UTF-8", encoding, error)
        return content.decode("utf-8", errors="replace"), "utf-8", "default"


def _header_charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    import email.message

    message = email.message.Message()
    message["Content-Type"] = content_type
    label = message.get_param("charset")
    if not isinstance(label, str):
        return None
    return _codec(label, "the Content-Type header")


def _meta_charset(content: bytes) -> str | None:
    # Imported here because bs4 and the soupsieve package it loads take tens of
    # milliseconds to import, and a page with a byte order mark or a charset in its
    # Content-Type header never needs them.
    from bs4.dammit import EncodingDetector

    label = EncodingDetector.find_declared_encoding(content, is_html=True)
    if not label:
        return None
    codec = _codec(label, "the page's <meta> tag")
    # A page cannot declare UTF-16 in ASCII-compatible bytes; the standard reads it
    # as UTF-8.
    if codec and codec.startswith("utf-16"):
        return "utf-8"
    return codec


def _codec(label: str, origin: str) -> str | None:
    label = label.strip().strip("'\"").lower()
    label = _WHATWG_ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
        b"<html>".decode(info.name)
    except (LookupError, ValueError, UnicodeError):
        info = None
    # Codecs such as base64 or rot13 are byte or text transforms, not charsets.
    if info is None or not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        log.warning("ignoring unknown charset %r declared in %s", label, origin)
        return None
    return info.name
