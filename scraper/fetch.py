"""Download a source's page over HTTP(S) or read it from a file.

One ``requests.Session`` per set of fetch settings does the work. urllib3's ``Retry``
retries connection errors, 429 and 5xx with backoff, and honours ``Retry-After`` up
to ``max_retry_after``. A longer wait is a failure, so the next scheduled run retries
instead of a job that sleeps for an hour. The body is streamed so that its size and
the overall deadline are checked as it arrives.
"""

from __future__ import annotations

import contextvars
import email.message
import email.utils
import hashlib
import logging
import re
import stat
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import url2pathname

import requests
import urllib3
from urllib3.util.retry import Retry

from . import __version__
from .charset import decode_html
from .config import FetchSettings, Source
from .errors import Cancelled, FetchError
from .redact import redact_url

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
HTML_MEDIA_TYPES = ("text/html", "application/xhtml+xml")
MAX_REDIRECTS = 10
# Seconds past the deadline allowed for the worker's own deadline checks to fire
# before the caller stops waiting for it.
DEADLINE_GRACE = 1.0
# Seconds between checks for a cancelled run while the fetch worker runs.
CANCEL_POLL = 0.2
CHUNK_SIZE = 16 * 1024
ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"


@dataclass(frozen=True)
class Validators:
    """The server's own cache validators, sent back verbatim on the next request."""

    etag: str | None = None
    last_modified: str | None = None

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)


@dataclass
class Page:
    """A fetched page, or a 304 response when ``not_modified`` is true."""

    url: str
    final_url: str
    fetched_at: datetime
    not_modified: bool = False
    status: int | None = None
    content: bytes = b""
    text: str = ""
    encoding: str = ""
    encoding_source: str = ""
    validators: Validators = field(default_factory=Validators)
    redirects: tuple[str, ...] = ()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def describe(self) -> str:
        """Return the final URL, with the redirect chain when there was one."""
        final = redact_url(self.final_url)
        if not self.redirects:
            return final
        chain = " -> ".join(redact_url(url) for url in self.redirects)
        return f"{final} (redirected from {chain})"


@dataclass
class _RequestState:
    deadline: float
    origin_host: str
    allowed_hosts: tuple[str, ...]
    phase: str = "waiting for the response"


_STATE: contextvars.ContextVar[_RequestState] = contextvars.ContextVar("fetch_state")


class _RateLimited(Exception):
    def __init__(self, status: int, wait: float) -> None:
        super().__init__(status, wait)
        self.status = status
        self.wait = wait


class _DeadlinePassed(Exception):
    pass


class _RedirectRefused(Exception):
    pass


class _BoundedRetry(Retry):
    """A ``Retry`` that never sleeps past the deadline or longer than ``max_retry_after``."""

    def __init__(self, *args, max_retry_after: float = 60.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_retry_after = max_retry_after

    def new(self, **kwargs) -> _BoundedRetry:
        retry = super().new(**kwargs)
        retry.max_retry_after = self.max_retry_after
        return retry

    def sleep_for_retry(self, response) -> bool:
        header = response.headers.get("Retry-After")
        if header is None:
            return False
        wait = _parse_retry_after(header)
        if wait is None:
            return False
        if wait > self.max_retry_after:
            raise _RateLimited(response.status, wait)
        _sleep_within_deadline(wait)
        return True

    def _sleep_backoff(self) -> None:
        _sleep_within_deadline(self.get_backoff_time())

    def increment(
        self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None
    ):
        # Logs each retry that urllib3 decides on, which would otherwise be silent.
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        if error is not None:
            cause = _first_line(error)
        elif response is not None:
            cause = f"HTTP {response.status}"
        else:
            cause = "an unknown failure"
        where = url or ""
        if _pool is not None:
            where = f"{_pool.scheme}://{_pool.host}:{_pool.port}{where}"
        log.info(
            "retry %d for %s after %s; %s more allowed",
            len(retry.history), redact_url(where), cause, retry.total,
        )
        return retry


def _sleep_within_deadline(seconds: float) -> None:
    state = _STATE.get(None)
    if state is not None and time.monotonic() + seconds > state.deadline:
        raise _DeadlinePassed()
    if seconds > 0:
        time.sleep(seconds)


def _parse_retry_after(value: str) -> float | None:
    value = value.strip()
    if value.isdigit():
        return float(value)
    parsed = email.utils.parsedate_to_datetime(value) if value else None
    if parsed is None or parsed.tzinfo is None:
        return None
    return max(0.0, (parsed - datetime.now(timezone.utc)).total_seconds())


class _CheckedSession(requests.Session):
    """A session that refuses redirects to another host or to a non-HTTP scheme."""

    def get_redirect_target(self, resp):
        location = super().get_redirect_target(resp)
        if location is None:
            return None
        target = urljoin(resp.url, location)
        parts = urlsplit(target)
        shown = redact_url(target)
        if parts.scheme not in ("http", "https"):
            raise _RedirectRefused(f"redirect to {shown!r} uses the scheme {parts.scheme!r}")
        if urlsplit(resp.url).scheme == "https" and parts.scheme == "http":
            raise _RedirectRefused(f"redirect from HTTPS to plain HTTP ({shown})")
        state = _STATE.get(None)
        host = (parts.hostname or "").lower()
        if state and host != state.origin_host and host not in state.allowed_hosts:
            raise _RedirectRefused(
                f"redirect to another host {host!r} ({shown}); add it to "
                "fetch.allow_redirect_hosts if the page really moved there"
            )
        return location


def build_session(settings: FetchSettings) -> requests.Session:
    """Create the session that fetches every source with these settings."""
    session = _CheckedSession()
    session.max_redirects = MAX_REDIRECTS
    session.headers["User-Agent"] = settings.user_agent or (
        f"scraper/{__version__} python-requests/{requests.__version__}"
    )
    session.headers["Accept"] = ACCEPT
    session.verify = settings.ca_bundle or True
    retry = _BoundedRetry(
        total=settings.retries,
        connect=settings.retries,
        read=settings.retries,
        status=settings.retries,
        other=0,
        redirect=False,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        backoff_factor=settings.backoff_factor,
        backoff_max=max(settings.backoff_factor, 30.0),
        raise_on_status=False,
        respect_retry_after_header=True,
        max_retry_after=settings.max_retry_after,
    )
    adapter = requests.adapters.HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def fetch_page(
    source: Source,
    validators: Validators | None = None,
    session: requests.Session | None = None,
    url: str | None = None,
    cancel: threading.Event | None = None,
) -> Page:
    """Fetch the page of ``source``, or of ``url`` when given.

    ``validators`` from the last successful run make the request conditional. Raises
    FetchError naming the URL and what went wrong.
    """
    url = url or source.url
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        own_session = session is None
        session = session or build_session(source.fetch)
        try:
            return _fetch_http(source, url, validators or Validators(), session, cancel)
        finally:
            if own_session:
                session.close()
    return _read_file(source, url)


def _fetch_http(
    source: Source,
    url: str,
    validators: Validators,
    session: requests.Session,
    cancel: threading.Event | None = None,
) -> Page:
    settings = source.fetch
    state = _RequestState(
        deadline=time.monotonic() + settings.deadline,
        origin_host=(urlsplit(url).hostname or "").lower(),
        allowed_hosts=settings.allow_redirect_hosts,
    )
    outcome: dict = {}

    def fetch_in_thread() -> None:
        _STATE.set(state)
        try:
            outcome["page"] = _fetch_with_body_retries(source, url, validators, session, state)
        except BaseException as error:  # noqa: BLE001 - handed to the calling thread
            outcome["error"] = error

    # Socket timeouts bound each read, not the whole exchange: a server that sends
    # its headers a byte at a time could hold a read loop for hours. The fetch runs
    # in a worker thread so the caller can give up when the deadline passes.
    worker = threading.Thread(target=fetch_in_thread, name=f"fetch {source.name}", daemon=True)
    worker.start()
    give_up_at = time.monotonic() + settings.deadline + DEADLINE_GRACE
    while worker.is_alive() and time.monotonic() < give_up_at:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        worker.join(min(CANCEL_POLL, max(0.0, give_up_at - time.monotonic())))
    if worker.is_alive():
        # NOTE: the worker is left to end on its own. Each of its socket reads still
        # times out after read_timeout, and the process can exit without it.
        raise _fetch_error(
            source,
            url,
            f"overall deadline of {settings.deadline:g} s passed while {state.phase}",
            hint="the server sends too slowly; raise fetch.deadline or try later",
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["page"]


def _fetch_with_body_retries(
    source: Source,
    url: str,
    validators: Validators,
    session: requests.Session,
    state: _RequestState,
) -> Page:
    # urllib3 retries what fails before the body starts. A body that breaks off
    # while it streams is retried here, within the same deadline.
    attempt = 0
    while True:
        attempt += 1
        try:
            return _fetch_once(source, url, validators, session, state)
        except _BodyBroken as error:
            remaining = state.deadline - time.monotonic()
            if attempt > source.fetch.retries or remaining <= 0:
                raise _fetch_error(source, url, f"{error} (after {attempt} attempts)")
            log.warning("%s: %s; retrying (attempt %d)", source.name, error, attempt + 1)


class _BodyBroken(Exception):
    pass


def _fetch_once(
    source: Source,
    url: str,
    validators: Validators,
    session: requests.Session,
    state: _RequestState,
) -> Page:
    settings = source.fetch
    headers = {}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    fetched_at = datetime.now(timezone.utc)
    remaining = max(0.1, state.deadline - time.monotonic())
    timeout = (settings.connect_timeout, min(settings.read_timeout, remaining))
    log.debug("%s: GET %s (conditional: %s)", source.name, redact_url(url), bool(headers))
    try:
        # verify is passed per request because requests lets REQUESTS_CA_BUNDLE
        # override a session-level bundle, but not a request-level one.
        response = session.get(
            url,
            headers=headers,
            timeout=timeout,
            stream=True,
            verify=settings.ca_bundle or True,
        )
    except _RateLimited as error:
        raise _fetch_error(
            source,
            url,
            f"rate limited: HTTP {error.status} asked to wait {error.wait:.0f} s, "
            f"more than max_retry_after ({settings.max_retry_after:.0f} s)",
            hint="the next scheduled run will try again",
        ) from None
    except _DeadlinePassed:
        raise _fetch_error(
            source,
            url,
            f"overall deadline of {settings.deadline:g} s passed while retrying",
            hint="the server kept failing; raise fetch.deadline or try later",
        ) from None
    except _RedirectRefused as error:
        raise _fetch_error(source, url, f"refused {error}") from None
    except requests.exceptions.TooManyRedirects as error:
        chain = [redact_url(r.url) for r in getattr(error.response, "history", []) or []]
        raise _fetch_error(
            source,
            url,
            f"more than {MAX_REDIRECTS} redirects (a redirect loop?): "
            + " -> ".join(chain[:5] + ["..."]),
        ) from None
    except requests.exceptions.RequestException as error:
        message, hint = _request_failure(error, settings)
        raise _fetch_error(source, url, message, hint) from None
    with response:
        return _read_response(source, url, response, validators, fetched_at, state)


def _read_response(
    source: Source,
    url: str,
    response: requests.Response,
    validators: Validators,
    fetched_at: datetime,
    state: _RequestState,
) -> Page:
    redirects = tuple(r.url for r in response.history)
    if response.status_code == 304:
        if not validators:
            raise _fetch_error(source, url, "HTTP 304 to a request that had no validators")
        return Page(
            url=url,
            final_url=response.url,
            fetched_at=fetched_at,
            not_modified=True,
            status=304,
            validators=_merge_validators(validators, response),
            redirects=redirects,
        )
    if response.status_code not in (200, 203):
        raise _fetch_error(
            source,
            response.url,
            f"HTTP {response.status_code} {response.reason or ''}".rstrip(),
            hint=_status_hint(response.status_code),
        )
    _check_media_type(source, response)
    _check_content_encoding(source, response)
    content = _read_body(source, response, state)
    text, encoding, encoding_source = decode_html(
        content, response.headers.get("Content-Type")
    )
    return Page(
        url=url,
        final_url=response.url,
        fetched_at=fetched_at,
        status=response.status_code,
        content=content,
        text=text,
        encoding=encoding,
        encoding_source=encoding_source,
        validators=Validators(
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
        ),
        redirects=redirects,
    )


def _merge_validators(sent: Validators, response: requests.Response) -> Validators:
    return Validators(
        etag=response.headers.get("ETag") or sent.etag,
        last_modified=response.headers.get("Last-Modified") or sent.last_modified,
    )


def _check_media_type(source: Source, response: requests.Response) -> None:
    header = response.headers.get("Content-Type")
    if header is None:
        return  # Checked by sniffing once the body is read.
    media_type = header.split(";", 1)[0].strip().lower()
    if media_type not in HTML_MEDIA_TYPES:
        raise _fetch_error(
            source,
            response.url,
            f"expected an HTML page, got Content-Type {header!r}",
            hint="check that the URL points at the page, not a download or API",
        )


def _check_content_encoding(source: Source, response: requests.Response) -> None:
    # urllib3 passes a body with an encoding it cannot decode through unchanged,
    # which would then fail to parse with a misleading message.
    header = response.headers.get("Content-Encoding", "")
    supported = {"identity", *urllib3.response.HTTPResponse.CONTENT_DECODERS}
    unknown = [
        coding for coding in (part.strip().lower() for part in header.split(","))
        if coding and coding not in supported
    ]
    if unknown:
        raise _fetch_error(
            source,
            response.url,
            f"cannot decode Content-Encoding {header!r}: "
            f"supported are {', '.join(sorted(supported))}",
            hint="install brotli or zstandard for those encodings, or ask the server for gzip",
        )


def _read_body(
    source: Source, response: requests.Response, state: _RequestState
) -> bytes:
    settings = source.fetch
    declared = response.headers.get("Content-Length", "")
    encoded = response.headers.get("Content-Encoding", "identity").lower()
    if declared.isdigit() and encoded == "identity" and int(declared) > settings.max_bytes:
        raise _too_large(source, response.url, f"Content-Length is {declared}")
    chunks: list[bytes] = []
    size = 0
    state.phase = "reading the body"
    try:
        # read1 returns whatever one socket read brought, so the deadline is checked
        # even when a server drips a byte at a time.
        while chunk := response.raw.read1(CHUNK_SIZE, decode_content=True):
            size += len(chunk)
            state.phase = f"reading the body ({size} bytes received)"
            if size > settings.max_bytes:
                raise _too_large(source, response.url, f"received over {size} bytes")
            if time.monotonic() > state.deadline:
                raise _fetch_error(
                    source,
                    response.url,
                    f"overall deadline of {settings.deadline:g} s passed while "
                    f"reading the body ({size} bytes received)",
                    hint="the server sends too slowly; raise fetch.deadline or try later",
                )
            chunks.append(chunk)
    except urllib3.exceptions.DecodeError as error:
        raise _fetch_error(
            source,
            response.url,
            f"cannot decode the body as Content-Encoding {encoded!r}: {_first_line(error)}",
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        reason, _ = _request_failure(error, settings)
        raise _BodyBroken(
            f"the body broke off after {size} bytes"
            + (f" of {declared}" if declared else "")
            + f": {reason}"
        ) from None
    content = b"".join(chunks)
    if "Content-Type" not in response.headers and not _looks_like_html(content):
        raise _fetch_error(
            source,
            response.url,
            "the response has no Content-Type and does not look like HTML",
        )
    return content


def _read_file(source: Source, url: str) -> Page:
    path = _path_from_url(url)
    fetched_at = datetime.now(timezone.utc)
    try:
        status = path.stat()
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError()
        if not stat.S_ISREG(status.st_mode):
            # A device or FIFO reports size 0 and may never end.
            raise _fetch_error(
                source, str(path), "is not a regular file", hint="save the page to a file first"
            )
        if status.st_size > source.fetch.max_bytes:
            raise _too_large(source, str(path), f"the file has {status.st_size} bytes")
        with path.open("rb") as handle:
            content = handle.read(source.fetch.max_bytes + 1)
        if len(content) > source.fetch.max_bytes:
            raise _too_large(source, str(path), "the file grew while it was read")
    except FileNotFoundError:
        raise _fetch_error(
            source,
            str(path.absolute()),
            "file not found",
            hint="a relative --url is resolved against the current folder, a relative "
            "url in the configuration against the configuration file's folder",
        ) from None
    except IsADirectoryError:
        raise _fetch_error(source, str(path), "is a folder, not an HTML file") from None
    except OSError as error:
        raise _fetch_error(source, str(path), f"cannot read the file: {error.strerror}") from None
    if path.suffix.lower() not in (".html", ".htm", ".xhtml") and not _looks_like_html(content):
        raise _fetch_error(source, str(path), "the file does not look like an HTML page")
    text, encoding, encoding_source = decode_html(content, None)
    return Page(
        url=url,
        final_url=path.resolve().as_uri(),
        fetched_at=fetched_at,
        content=content,
        text=text,
        encoding=encoding,
        encoding_source=encoding_source,
    )


def _path_from_url(url: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme.lower() == "file":
        if parts.netloc not in ("", "localhost"):
            return Path(f"//{parts.netloc}{url2pathname(unquote(parts.path))}")
        return Path(url2pathname(unquote(parts.path)))
    return Path(url)


_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|table)\b", re.I | re.S)


def _looks_like_html(content: bytes) -> bool:
    head = content[:4096].lstrip(b"\xef\xbb\xbf")
    return bool(_HTML_START.match(head))


def _request_failure(error: Exception, settings: FetchSettings) -> tuple[str, str]:
    """Return what went wrong with a request that got no response, and what to check."""
    text = str(error)
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return (
            f"timed out connecting after {settings.connect_timeout:g} s",
            "the host did not answer; check the url and any firewall, "
            "or raise fetch.connect_timeout",
        )
    if isinstance(error, requests.exceptions.ReadTimeout) or "Read timed out" in text:
        return (
            "timed out waiting for data after "
            f"{min(settings.read_timeout, settings.deadline):g} s",
            "the server is slow; raise fetch.read_timeout, or wait for the next run",
        )
    if "NameResolutionError" in text or "Name or service not known" in text:
        return (
            f"cannot resolve the host name: {_first_line(error)}",
            "check the host name in the source's url and this machine's DNS settings",
        )
    if "Connection refused" in text:
        return (
            "connection refused",
            "no server listens at that host and port; "
            "check the url's port and that the server is running",
        )
    if isinstance(error, requests.exceptions.SSLError):
        return (
            f"TLS verification failed: {_first_line(error)}",
            "check the system clock and the CA bundle (REQUESTS_CA_BUNDLE)",
        )
    general = "check the url and the network; the next run will try again"
    if isinstance(error, (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError)):
        return f"incomplete body: {_first_line(error)}", general
    return _first_line(error), general


def _first_line(error: Exception) -> str:
    return " ".join(str(error).split())[:300]


def _status_hint(status: int) -> str | None:
    if status in (404, 410):
        return "the page moved or was removed; check the source's url"
    if status in (401, 403):
        return "the server refused access; check the URL and any proxy"
    if status == 429 or status >= 500:
        return "the server kept failing after retries; the next run will try again"
    return None


def _fetch_error(source: Source, where: str, message: str, hint: str | None = None) -> FetchError:
    return FetchError(message, source=source.name, where=where, hint=hint)


def _too_large(source: Source, where: str, found: str) -> FetchError:
    return _fetch_error(
        source,
        where,
        f"page larger than fetch.max_bytes ({source.fetch.max_bytes} bytes): {found}",
        hint="raise fetch.max_bytes if the page really is that large",
    )
