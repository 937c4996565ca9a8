"""A catalogue of bad inputs from a server or a saved file, run through `scraper sync`.

Every case first syncs the good 4-row capture as version 1, then switches the page to
a bad input and runs `scraper sync` again. A failing case must exit with its
documented code, print an error that names the source, the URL or file and a specific
problem, and leave the snapshot store byte-for-byte unchanged. A few cases are
inputs that the tool must read correctly: they exit 0 and report version 1 as
unchanged, because their rows are the same as the good page's rows.

The page variants are edits of fixtures/matrix-4rows-asc.html. Each edit asserts that
the text it replaces occurs as often as expected, so a changed fixture fails loudly
instead of yielding a page that tests nothing.
"""

from __future__ import annotations

import codecs
import dataclasses
import gzip
import re
import socket
import threading
import tracemalloc
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from tests.conftest import PAGE_PATH, fixture_bytes, store_files, write_config
from tests.httpserver import Reply

SOURCE = "capi-image-builder"
STATE_FILE = f"{SOURCE}/state.yaml"
UNRESOLVABLE_HOST = "matrix.example.invalid"
LOOPBACK_HOSTS = ("127.0.0.1",)
PROXY_VARIABLES = (
    "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"
)

MIB = 1024 * 1024
# Seconds after which a drip case closes its server. A run that honours its 1 s
# deadline has ended long before, and one that ignores it then fails with a
# different message instead of waiting for the whole drip.
DRIP_WATCHDOG = 2.5
# Peak traced memory allowed while the gzip bomb is read. The bomb expands to
# 64 MiB and max_bytes is 1 MiB, so a reader that stops at the limit stays far below.
BOMB_PEAK_LIMIT = 16 * MIB


# Page variants


def edit(page: bytes, old: bytes, new: bytes, count: int = 1) -> bytes:
    """Return ``page`` with ``old`` replaced, asserting it occurs ``count`` times."""
    found = page.count(old)
    assert found == count, f"expected {count} of {old[:60]!r}, found {found}"
    return page.replace(old, new)


def edit_pattern(page: bytes, pattern: bytes, new: bytes, count: int) -> bytes:
    """Return ``page`` with ``pattern`` replaced, asserting ``count`` matches."""
    edited, found = re.subn(pattern, new, page, flags=re.S)
    assert found == count, f"expected {count} matches of {pattern!r}, found {found}"
    return edited


def find(page: bytes, pattern: bytes) -> bytes:
    """Return the one regex match of ``pattern`` in ``page``."""
    matches = re.findall(pattern, page, flags=re.S)
    assert len(matches) == 1, f"expected one match of {pattern!r}, found {len(matches)}"
    return matches[0]


GOOD = fixture_bytes("matrix-4rows-asc.html")
TABLE = find(GOOD, rb"<table>.*?</table>")
THEAD = find(TABLE, rb"<thead>.*?</thead>")
TBODY = find(TABLE, rb"<tbody>.*?</tbody>")
ROW_1_30_4 = find(TABLE, rb"<tr><td>1\.30\.4</td>.*?</tr>")
DEPENDENCIES_1_30_4 = find(ROW_1_30_4, rb"<td><code>cni_version.*?</td>")


def edit_last_row(old: bytes, new: bytes) -> bytes:
    """Return the good page with ``old`` replaced by ``new`` in its 1.30.4 row only."""
    return edit(GOOD, ROW_1_30_4, edit(ROW_1_30_4, old, new))


# Offset of the 1.29.4 row: a body cut here ends in the middle of the table.
MID_TABLE = GOOD.index(b"<tr><td>1.29.4</td>")

SOFT_404_PAGE = edit(
    GOOD,
    TABLE,
    b'<h1 class="hero__title">Page Not Found</h1>'
    b"<p>We could not find what you were looking for.</p>",
)
LOGIN_PAGE = edit(
    GOOD,
    TABLE,
    b'<form action="/login" method="post">'
    b'<label>Email <input type="email" name="email"></label>'
    b'<label>Password <input type="password" name="password"></label>'
    b'<button type="submit">Sign in</button></form>',
)
LOST_COLUMN_PAGE = edit_pattern(
    edit(GOOD, b"<th>Dependencies Version</th>", b""),
    rb"<td><code>cni_version</code>.*?</td>",
    b"",
    count=4,
)
GAINED_COLUMN_PAGE = edit(
    edit(GOOD, b"</th></tr></thead>", b"</th><th>Operating System</th></tr></thead>"),
    b"</td></tr>",
    b"</td><td>Ubuntu 22.04</td></tr>",
    count=4,
)
RENAMED_HEADER_PAGE = edit(
    GOOD, b"<th>Kubernetes Version</th>", b"<th>K8s Version</th>"
)
NO_ROWS_PAGE = edit(GOOD, TBODY, b"<tbody></tbody>")
DUPLICATE_ROW_PAGE = edit(GOOD, ROW_1_30_4, ROW_1_30_4 + ROW_1_30_4)
KEY_NOT_VERSION_PAGE = edit(GOOD, b"<td>1.30.4</td>", b"<td>latest</td>")
PIN_NOT_VERSION_PAGE = edit_last_row(
    b"<code>crictl_version</code> = 1.28.0", b"<code>crictl_version</code> = TBD"
)
NESTED_TABLE_PAGE = edit_last_row(
    DEPENDENCIES_1_30_4,
    b"<td><table><tr><td>cni_version</td><td>1.3.0</td><td>since 1.30</td></tr>"
    b"</table></td>",
)
TWO_TABLES_PAGE = edit(GOOD, TABLE, TABLE + b"<h2>Previous releases</h2>" + TABLE)
THEAD_ONLY_PAGE = edit(GOOD, TABLE, b"<table>" + THEAD + b"</table>")
# The rest of the page, </html> included, follows the cut table.
TABLE_CUT_PAGE = edit(GOOD, TABLE, b"<table>" + THEAD + b"<tbody>")
COMMENTED_TABLE_PAGE = edit(GOOD, TABLE, b"<!-- " + TABLE + b" -->")
TEMPLATE_TABLE_PAGE = edit(GOOD, TABLE, b"<template>" + TABLE + b"</template>")
SCRIPT_TABLE_PAGE = edit(
    GOOD,
    TABLE,
    b'<div id="matrix"></div><script>'
    b"document.getElementById('matrix').innerHTML = '" + TABLE + b"';</script>",
)
UNDECODABLE_PAGE = edit_last_row(
    b"<code>crictl_version</code> = 1.28.0",
    b"<code>crictl_version</code> = 1.28.\xff\xfe0",
)
UTF16_BOM_PAGE = codecs.BOM_UTF16_LE + GOOD.decode("utf-8").encode("utf-16-le")
UTF8_BOM_PAGE = codecs.BOM_UTF8 + GOOD


def chunked_without_last_chunk(body: bytes, size: int = 1024) -> bytes:
    """Chunk-encode ``body`` but leave out the final zero-length chunk."""
    pieces = [body[start : start + size] for start in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)


def gzip_of_zeros(size: int) -> bytes:
    """Return a gzip stream of ``size`` zero bytes, compressed 1 MiB at a time."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MIB)
    parts = [compressor.compress(block) for _ in range(size // MIB)]
    parts.append(compressor.flush())
    return b"".join(parts)


GZIP_BOMB = gzip_of_zeros(64 * MIB)
# Bytes that are neither a zlib nor a raw deflate stream: 0xff starts a deflate
# block of the reserved type 3.
GARBAGE = b"\xff\xfe\xfd not compressed at all " * 8


# The catalogue


@dataclass(frozen=True)
class Served:
    """The page URL returns ``replies`` in order, the last one repeating.

    ``routes`` adds other paths on the same server. "{port}" in a header value is
    replaced with the server's port.
    """

    replies: tuple[Reply, ...]
    routes: tuple[tuple[str, Reply], ...] = ()


@dataclass(frozen=True)
class Unreachable:
    """The source's URL names a closed port or a host name that does not resolve."""

    reason: Literal["refused", "unresolvable"]


@dataclass(frozen=True)
class SavedFile:
    """The source's URL is a file in the working folder.

    ``content`` None with ``folder`` False means that the file does not exist.
    """

    name: str
    content: bytes | None = None
    folder: bool = False


PageInput = Served | Unreachable | SavedFile


@dataclass(frozen=True)
class Case:
    """One bad input and what `scraper sync` must do with it.

    ``fragment`` is looked for in stderr, or in stdout when ``code`` is 0.
    ``requests`` is the number of requests the run makes to the page path.
    """

    id: str
    page_input: PageInput
    code: int
    fragment: str
    fetch: dict = field(default_factory=dict)
    requests: int | None = None
    close_server_after: float | None = None
    max_peak_bytes: int | None = None


def html(body: bytes, **reply) -> Served:
    return Served((Reply.html(body, **reply),))


def typed(content_type: str, body: bytes) -> Served:
    return Served((Reply(body=body, headers={"Content-Type": content_type}),))


def status(code: int, **reply) -> Served:
    body = b"<html><body>no page</body></html>"
    return Served((Reply.html(body, status=code, **reply),))


UNCHANGED = f"{SOURCE}: unchanged, version 1"
NOT_FOUND = "matrix table not found"
NO_DATA_ROWS = "the table has a header row but no data rows"
INCOMPLETE = "the page is incomplete"
SHORT_READ = {"read_timeout": 0.5, "retries": 0}

CATALOGUE = [
    # Connections
    Case("refused", Unreachable("refused"), 3, "connection refused"),
    Case("dns-failure", Unreachable("unresolvable"), 3, "cannot resolve the host name"),
    Case(
        "hang-before-headers",
        html(GOOD, behaviour="hang"),
        3,
        "timed out waiting for data after 0.5 s",
        fetch=SHORT_READ,
    ),
    Case(
        "stall-after-headers",
        html(GOOD, behaviour="stall_after", stall_bytes=200),
        3,
        "timed out waiting for data after 0.5 s",
        fetch=SHORT_READ,
    ),
    Case(
        "drip-past-deadline",
        html(GOOD[:400], behaviour="drip", drip_interval=0.2),
        3,
        "overall deadline of 1 s passed",
        fetch={"deadline": 1, "read_timeout": 2, "retries": 0},
        close_server_after=DRIP_WATCHDOG,
    ),
    # HTTP statuses
    Case("status-404", status(404), 3, "HTTP 404 Not Found"),
    Case("status-410", status(410), 3, "HTTP 410 Gone"),
    Case(
        "status-429-retries-exhausted",
        status(429, headers={"Retry-After": "1"}),
        3,
        "HTTP 429 Too Many Requests",
        requests=2,
    ),
    Case(
        "status-429-wait-seconds",
        status(429, headers={"Retry-After": "3600"}),
        3,
        "rate limited: HTTP 429 asked to wait 3600 s",
        requests=1,
    ),
    Case(
        "status-429-wait-date",
        status(429, headers={"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"}),
        3,
        "rate limited: HTTP 429 asked to wait",
        requests=1,
    ),
    Case("status-500", status(500), 3, "HTTP 500 Internal Server Error", requests=2),
    Case("status-502", status(502), 3, "HTTP 502 Bad Gateway", requests=2),
    Case(
        "status-503-then-ok",
        Served((status(503).replies[0], Reply.html(GOOD))),
        0,
        UNCHANGED,
        requests=2,
    ),
    # A 204, 206 or a 3xx without Location carries no complete page, so each one is
    # a fetch error rather than an empty or partial page handed to the parser.
    Case("status-204", Served((Reply(status=204),)), 3, "HTTP 204 No Content"),
    Case(
        "status-206",
        html(
            GOOD[:4096],
            status=206,
            headers={"Content-Range": f"bytes 0-4095/{len(GOOD)}"},
        ),
        3,
        "HTTP 206 Partial Content",
    ),
    Case(
        "redirect-without-location", Served((Reply(status=302),)), 3, "HTTP 302 Found"
    ),
    # Redirects
    Case(
        "redirect-loop",
        Served(
            (Reply.redirect("/loop/"),),
            routes=(("/loop/", Reply.redirect(PAGE_PATH)),),
        ),
        3,
        "redirect loop",
    ),
    Case(
        "redirect-other-host",
        Served(
            (Reply.redirect("http://localhost:{port}/moved/", 301),),
            routes=(("/moved/", Reply.html(GOOD)),),
        ),
        3,
        "refused redirect to another host 'localhost'",
    ),
    Case(
        "redirect-ftp",
        Served((Reply.redirect("ftp://127.0.0.1:{port}/matrix.html"),)),
        3,
        "uses the scheme 'ftp'",
    ),
    # Pages that are not the matrix
    Case("soft-404", html(SOFT_404_PAGE), 4, NOT_FOUND),
    Case("login-page", html(LOGIN_PAGE), 4, "found 0 tables"),
    Case(
        "json",
        typed("application/json", b'{"rows": []}'),
        3,
        "got Content-Type 'application/json'",
    ),
    # An HTML page labelled text/plain could be parsed, but a server that mislabels
    # its page may also send something else, so the label is rejected.
    Case(
        "text-plain",
        typed("text/plain; charset=utf-8", GOOD),
        3,
        "got Content-Type 'text/plain; charset=utf-8'",
    ),
    Case(
        "octet-stream",
        typed("application/octet-stream", GOOD),
        3,
        "got Content-Type 'application/octet-stream'",
    ),
    Case(
        "png",
        typed("image/png", b"\x89PNG\r\n\x1a\n" + bytes(64)),
        3,
        "got Content-Type 'image/png'",
    ),
    # Sizes and encodings
    Case(
        "too-large-content-length",
        html(GOOD),
        3,
        f"larger than fetch.max_bytes (4096 bytes): Content-Length is {len(GOOD)}",
        fetch={"max_bytes": 4096},
    ),
    Case(
        "too-large-close-delimited",
        html(GOOD, content_length=None),
        3,
        "larger than fetch.max_bytes (4096 bytes): received over",
        fetch={"max_bytes": 4096},
    ),
    Case(
        "too-large-chunked",
        html(GOOD, chunked=True, chunk_size=1024),
        3,
        "larger than fetch.max_bytes (4096 bytes): received over",
        fetch={"max_bytes": 4096},
    ),
    Case(
        "gzip-bomb",
        html(GZIP_BOMB, headers={"Content-Encoding": "gzip"}),
        3,
        f"larger than fetch.max_bytes ({MIB} bytes): received over",
        fetch={"max_bytes": MIB},
        max_peak_bytes=BOMB_PEAK_LIMIT,
    ),
    Case(
        "gzip-header-plain-body",
        html(GOOD, headers={"Content-Encoding": "gzip"}),
        3,
        "cannot decode the body as Content-Encoding 'gzip'",
    ),
    # Without the brotli package the client cannot decode br. Handing the raw bytes
    # to the parser would then report a cut-off page instead of the real cause.
    Case(
        "br-garbage",
        html(GARBAGE, headers={"Content-Encoding": "br"}),
        3,
        "Content-Encoding 'br'",
    ),
    Case(
        "deflate-garbage",
        html(GARBAGE, headers={"Content-Encoding": "deflate"}),
        3,
        "cannot decode the body as Content-Encoding 'deflate'",
    ),
    Case(
        "double-gzip-header",
        html(gzip.compress(GOOD), headers={"Content-Encoding": "gzip, gzip"}),
        3,
        "cannot decode the body as Content-Encoding 'gzip, gzip'",
    ),
    # Cut-off bodies
    Case(
        "content-length-too-large",
        html(GOOD, content_length=len(GOOD) + 1000, behaviour="close_early"),
        3,
        f"the body broke off after {len(GOOD)} bytes of {len(GOOD) + 1000}",
        requests=2,
    ),
    Case(
        "close-delimited-cut",
        html(GOOD[:MID_TABLE], content_length=None),
        4,
        "the page is incomplete: it has 1 <table> and 0 </table> tags",
    ),
    Case(
        "chunked-without-last-chunk",
        html(
            chunked_without_last_chunk(GOOD[:MID_TABLE]),
            content_length=None,
            headers={"Transfer-Encoding": "chunked"},
        ),
        3,
        "the body broke off after",
        requests=2,
    ),
    # Character encodings
    Case("undecodable-bytes", html(UNDECODABLE_PAGE), 4, "undecodable bytes"),
    Case("utf16-bom-header-utf8", html(UTF16_BOM_PAGE, charset="utf-8"), 0, UNCHANGED),
    Case(
        "utf8-bom-header-latin1",
        html(UTF8_BOM_PAGE, charset="iso-8859-1"),
        0,
        UNCHANGED,
    ),
    # An empty 200 response is reported as a cut-off page, the cause a server most
    # likely has, rather than as a page without the table.
    Case("empty-body", html(b""), 4, INCOMPLETE),
    Case("whitespace-body", html(b" \r\n\t\n" * 50), 4, INCOMPLETE),
    # Table changes
    Case("lost-column", html(LOST_COLUMN_PAGE), 4, NOT_FOUND),
    # An extra column could be ignored, but a new column may change what the old
    # columns mean, so the table no longer matches and a person has to look.
    Case("gained-column", html(GAINED_COLUMN_PAGE), 4, NOT_FOUND),
    Case("renamed-header", html(RENAMED_HEADER_PAGE), 4, "first row ['K8s Version'"),
    Case("no-rows", html(NO_ROWS_PAGE), 4, NO_DATA_ROWS),
    Case(
        "duplicate-row",
        html(DUPLICATE_ROW_PAGE),
        4,
        "duplicate kubernetes_version '1.30.4' in data rows 4 and 5",
    ),
    Case("key-not-version", html(KEY_NOT_VERSION_PAGE), 4, "'latest' is not a version"),
    Case(
        "pin-not-version",
        html(PIN_NOT_VERSION_PAGE),
        4,
        "crictl_version: 'TBD' is not a version",
    ),
    Case(
        "nested-three-columns",
        html(NESTED_TABLE_PAGE),
        4,
        "expected 'key = value' lines, found 'cni_version 1.3.0 since 1.30'",
    ),
    Case("two-tables", html(TWO_TABLES_PAGE), 4, "2 tables have the headers"),
    Case("thead-only", html(THEAD_ONLY_PAGE), 4, NO_DATA_ROWS),
    # The page ends with </html>, but a table without </table> still means the
    # table itself was cut.
    Case(
        "table-cut-after-header",
        html(TABLE_CUT_PAGE),
        4,
        "1 <table> and 0 </table> tags",
    ),
    # Tables that a browser does not show
    Case("table-in-comment", html(COMMENTED_TABLE_PAGE), 4, "found 0 tables"),
    # A <template> is never rendered, so its table is not on the page.
    Case("table-in-template", html(TEMPLATE_TABLE_PAGE), 4, NOT_FOUND),
    Case("table-in-script", html(SCRIPT_TABLE_PAGE), 4, "found 0 tables"),
    # Saved files
    Case("file-missing", SavedFile("missing.html"), 3, "file not found"),
    Case("file-is-folder", SavedFile("page.html", folder=True), 3, "is a folder"),
    Case(
        "file-not-html",
        SavedFile("matrix.json", b'{"rows": []}'),
        3,
        "the file does not look like an HTML page",
    ),
    Case(
        "file-too-large",
        SavedFile("page.html", GOOD),
        3,
        f"the file has {len(GOOD)} bytes",
        fetch={"max_bytes": 4096},
    ),
    Case("file-cut", SavedFile("page.html", GOOD[:MID_TABLE]), 4, INCOMPLETE),
    Case("file-empty", SavedFile("page.html", b""), 4, INCOMPLETE),
    Case("file-soft-404", SavedFile("page.html", SOFT_404_PAGE), 4, NOT_FOUND),
]


# Running one case


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Resolve only 127.0.0.1 and use no proxy, so no request leaves the host."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host in LOOPBACK_HOSTS:
            return real_getaddrinfo(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def closed_port() -> int:
    """Return a port on 127.0.0.1 that was just bound and closed, so nothing listens."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def with_port(reply: Reply, port: int) -> Reply:
    headers = [
        (name, value.replace("{port}", str(port)))
        for name, value in reply.header_list()
    ]
    return dataclasses.replace(reply, headers=headers)


def prepare(page_input: PageInput, server, workdir: Path) -> str:
    """Set up ``page_input`` and return the URL or path that the source should use."""
    if isinstance(page_input, Served):
        replies = [with_port(reply, server.port) for reply in page_input.replies]
        server.route(PAGE_PATH, *replies)
        for path, reply in page_input.routes:
            server.route(path, with_port(reply, server.port))
        return server.url(PAGE_PATH)
    if isinstance(page_input, Unreachable):
        if page_input.reason == "refused":
            host = f"127.0.0.1:{closed_port()}"
        else:
            host = UNRESOLVABLE_HOST
        return f"http://{host}{PAGE_PATH}"
    path = workdir / page_input.name
    if page_input.folder:
        path.mkdir()
    elif page_input.content is not None:
        path.write_bytes(page_input.content)
    return str(path.resolve())


def run_sync(case: Case, server, scraper):
    """Run `scraper sync`, under the case's watchdog and memory tracing."""
    watchdog = None
    if case.close_server_after is not None:
        watchdog = threading.Timer(case.close_server_after, server.close)
        watchdog.start()
    if case.max_peak_bytes is not None:
        tracemalloc.start()
    try:
        result = scraper("sync")
        peak = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else 0
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
        if watchdog is not None:
            watchdog.cancel()
    return result, peak


def without_state(files: dict[str, bytes]) -> dict[str, bytes]:
    return {path: data for path, data in files.items() if path != STATE_FILE}


def test_catalogue_size():
    assert len(CATALOGUE) >= 45
    assert len({case.id for case in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda case: case.id)
def test_bad_input(case, workdir, server, scraper):
    server.route(PAGE_PATH, Reply.html(GOOD))
    write_config(workdir, server.url(PAGE_PATH))
    first = scraper("sync")
    assert first.code == 0, first.err
    before = store_files(workdir / "snapshots")
    assert f"{SOURCE}/versions/000001.yaml" in before

    url = prepare(case.page_input, server, workdir)
    write_config(workdir, url, fetch=case.fetch)
    earlier = len(server.requests_for(PAGE_PATH))
    result, peak = run_sync(case, server, scraper)
    after = store_files(workdir / "snapshots")

    assert result.code == case.code, result.err
    assert "Traceback" not in result.err
    if case.code == 0:
        assert case.fragment in result.out
        # A successful run rewrites state.yaml with its check time and nothing else.
        assert without_state(after) == without_state(before)
    else:
        assert case.fragment in result.err
        assert f"source '{SOURCE}'" in result.err
        assert url in result.err
        assert after == before
    if case.requests is not None:
        assert len(server.requests_for(PAGE_PATH)) - earlier == case.requests
    if case.max_peak_bytes is not None:
        assert peak < case.max_peak_bytes
