"""Remove secrets from URLs before they reach a message, a log line or a file."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_PARAMETER = re.compile(
    r"(token|secret|passw|pwd|key|sig|auth|credential|session|code)", re.I
)


def redact_url(url: str) -> str:
    """Return ``url`` with its password and secret-looking query values masked.

    ``https://user:pass@host/p?token=abc&page=2`` becomes
    ``https://user:***@host/p?token=***&page=2``. Text that is not a URL is returned
    unchanged.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAMETER.search(name) for name, _ in pairs):
            masked = [
                (name, MASK if _SECRET_PARAMETER.search(name) else value)
                for name, value in pairs
            ]
            query = urlencode(masked, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
