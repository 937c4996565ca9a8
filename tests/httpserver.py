"""Scripted HTTP/1.1 server on 127.0.0.1 for tests.

Each route has a list of replies that are served in order, and the last one repeats.
Every response closes the connection, so there is no keep-alive. Replies can also
misbehave on purpose: hang, stall, drip bytes slowly, or send a wrong Content-Length.
Only the standard library is used.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Literal

logger = logging.getLogger(__name__)

Behaviour = Literal["normal", "hang", "stall_after", "drip", "close_early"]
BEHAVIOURS = ("normal", "hang", "stall_after", "drip", "close_early")

HeaderInput = Mapping[str, str] | list[tuple[str, str]]

# Maximum time in seconds that a blocked thread waits before it checks for close().
POLL_INTERVAL = 0.05
# Total time in seconds that close() waits for all server threads to exit.
CLOSE_TIMEOUT = 0.5
MAX_HEADER_BYTES = 64 * 1024

NOT_FOUND_BODY = b"<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>\n"
BAD_REQUEST_BODY = b"<!DOCTYPE html><html><body><h1>400 Bad Request</h1></body></html>\n"


class CaseInsensitiveDict(MutableMapping):
    """Header mapping with case-insensitive lookup that keeps the original name case."""

    def __init__(self, items: Mapping[str, str] | list[tuple[str, str]] = ()) -> None:
        self._store: dict[str, tuple[str, str]] = {}
        self.update(items)

    def __setitem__(self, name: str, value: str) -> None:
        self._store[name.lower()] = (name, value)

    def __getitem__(self, name: str) -> str:
        return self._store[name.lower()][1]

    def __delitem__(self, name: str) -> None:
        del self._store[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._store.values())

    def __len__(self) -> int:
        return len(self._store)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return self._lower_items() == CaseInsensitiveDict(other)._lower_items()

    def __repr__(self) -> str:
        return f"CaseInsensitiveDict({dict(self.items())!r})"

    def _lower_items(self) -> dict[str, str]:
        return {key: value for key, (_, value) in self._store.items()}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it.

    `path` is the request target as sent, query string included. Repeated headers are
    joined with ", " into one value.
    """

    method: str
    path: str
    headers: CaseInsensitiveDict
    body: bytes = b""


@dataclass
class Reply:
    """Scripted response for one request.

    content_length: "auto" writes len(body), an int writes that value even when it is
    wrong, and None writes no Content-Length (the body then ends when the connection
    closes). With chunked=True, "auto" writes no Content-Length either.

    behaviour:
      normal       send the whole response, then close.
      hang         read the request and send nothing until the client or server closes.
      stall_after  send the head and the first `stall_bytes` bytes after it, then send
                   nothing more until the client or server closes. With chunked=True
                   these bytes include the chunk framing.
      drip         send the whole response one byte every `drip_interval` seconds.
      close_early  send the head and body, then close. Use it with a content_length
                   larger than the body to get a truncated response. Because every
                   response closes the connection, its bytes on the wire match "normal".

    The server adds Content-Length (as set by content_length) and "Connection: close"
    unless `headers` already contains that name. A HEAD request gets the head only.
    """

    status: int = 200
    reason: str | None = None
    headers: HeaderInput = field(default_factory=dict)
    body: bytes = b""
    content_length: Literal["auto"] | int | None = "auto"
    behaviour: Behaviour = "normal"
    stall_bytes: int = 0
    drip_interval: float = 0.5
    chunked: bool = False
    chunk_size: int = 16

    def __post_init__(self) -> None:
        if self.behaviour not in BEHAVIOURS:
            raise ValueError(
                f"invalid behaviour {self.behaviour!r}, expected one of {BEHAVIOURS}"
            )
        if not isinstance(self.body, bytes):
            raise TypeError(f"body must be bytes, got {type(self.body).__name__}")
        if self.content_length != "auto" and self.content_length is not None:
            if not isinstance(self.content_length, int) or self.content_length < 0:
                raise ValueError(
                    f"invalid content_length {self.content_length!r}, "
                    'expected "auto", None or an int >= 0'
                )
        if self.stall_bytes < 0:
            raise ValueError(f"invalid stall_bytes {self.stall_bytes}, expected >= 0")
        if self.drip_interval < 0:
            raise ValueError(f"invalid drip_interval {self.drip_interval}, expected >= 0")
        if self.chunk_size < 1:
            raise ValueError(f"invalid chunk_size {self.chunk_size}, expected >= 1")
        for name, value in self.header_list():
            _check_latin1(name, value)

    @classmethod
    def html(
        cls, body: bytes | str, charset: str | None = "utf-8", **kwargs: object
    ) -> Reply:
        """Build a reply with Content-Type "text/html; charset=<charset>".

        A str body is encoded with `charset`, or UTF-8 when charset is None, in which
        case the Content-Type is plain "text/html". A Content-Type in `headers` wins.
        """
        if isinstance(body, str):
            body = body.encode(charset or "utf-8")
        content_type = "text/html" if charset is None else f"text/html; charset={charset}"
        headers = _with_default_header(kwargs.pop("headers", {}), "Content-Type", content_type)
        return cls(body=body, headers=headers, **kwargs)

    @classmethod
    def redirect(cls, location: str, status: int = 302, **kwargs: object) -> Reply:
        """Build a redirect to `location`, which may be relative to the request URL."""
        headers = _with_default_header(kwargs.pop("headers", {}), "Location", location)
        return cls(status=status, headers=headers, **kwargs)

    def header_list(self) -> list[tuple[str, str]]:
        """Return the headers as (name, value) pairs, without the ones the server adds."""
        if isinstance(self.headers, Mapping):
            return list(self.headers.items())
        return list(self.headers)


def _check_latin1(name: str, value: str) -> None:
    for text in (name, value):
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(
                f"invalid header {name!r}: {text!r} is not encodable as ISO-8859-1"
            ) from None


def _with_default_header(headers: HeaderInput, name: str, value: str) -> list[tuple[str, str]]:
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    if not _has_header(pairs, name):
        pairs.insert(0, (name, value))
    return pairs


def _has_header(pairs: list[tuple[str, str]], name: str) -> bool:
    return any(key.lower() == name.lower() for key, _ in pairs)


def encode_head(reply: Reply) -> bytes:
    """Return the status line and headers of `reply`, ending with the blank line."""
    reason = reply.reason
    if reason is None:
        try:
            reason = HTTPStatus(reply.status).phrase
        except ValueError:
            reason = ""
    pairs = reply.header_list()
    if reply.chunked and not _has_header(pairs, "Transfer-Encoding"):
        pairs.append(("Transfer-Encoding", "chunked"))
    if not _has_header(pairs, "Content-Length"):
        if reply.content_length == "auto" and not reply.chunked:
            pairs.append(("Content-Length", str(len(reply.body))))
        elif isinstance(reply.content_length, int):
            pairs.append(("Content-Length", str(reply.content_length)))
    if not _has_header(pairs, "Connection"):
        pairs.append(("Connection", "close"))

    lines = [f"HTTP/1.1 {reply.status} {reason}"]
    lines += [f"{name}: {value}" for name, value in pairs]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def encode_body(reply: Reply) -> bytes:
    """Return the body as sent on the wire, chunk-encoded when reply.chunked is set."""
    if not reply.chunked:
        return reply.body
    chunks = []
    for start in range(0, len(reply.body), reply.chunk_size):
        piece = reply.body[start : start + reply.chunk_size]
        chunks.append(b"%x\r\n%s\r\n" % (len(piece), piece))
    chunks.append(b"0\r\n\r\n")
    return b"".join(chunks)


class BadRequest(Exception):
    """Request that the server cannot parse."""


def parse_head(data: bytes) -> tuple[str, str, CaseInsensitiveDict]:
    """Parse a request line and headers, without the final blank line.

    Raises BadRequest when the request line does not have three parts or a header
    line has no colon.
    """
    lines = data.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise BadRequest(f"invalid request line {lines[0]!r}")
    method, target, _ = parts

    headers = CaseInsensitiveDict()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise BadRequest(f"invalid header line {line!r}")
        name, value = name.strip(), value.strip()
        if name in headers:
            headers[name] = f"{headers[name]}, {value}"
        else:
            headers[name] = value
    return method, target, headers


class ScriptedServer:
    """HTTP/1.1 server on 127.0.0.1 that serves scripted replies from daemon threads.

    It starts listening on a free port as soon as it is created. Paths without a route
    get a 404 with a small HTML body. Every method gets the routed reply, and HEAD gets
    the head only.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._routes: dict[str, list[Reply]] = {}
        self._served_counts: dict[str, int] = {}
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._handlers: set[threading.Thread] = set()

        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.host, self.port = self._listener.getsockname()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"ScriptedServer:{self.port}", daemon=True
        )
        self._accept_thread.start()

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def url(self, path: str = "/") -> str:
        if not path.startswith("/"):
            raise ValueError(f"invalid path {path!r}, expected it to start with '/'")
        return f"http://{self.host}:{self.port}{path}"

    def route(self, path: str, *replies: Reply) -> None:
        """Set the replies for `path` and restart its sequence at the first reply.

        A route matches the request target exactly, or else its part before "?".
        """
        if not replies:
            raise ValueError(f"route {path!r} needs at least one Reply")
        with self._lock:
            self._routes[path] = list(replies)
            self._served_counts[path] = 0

    @property
    def requests(self) -> list[RecordedRequest]:
        """Copy of all recorded requests, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """Return the recorded requests whose target, or its part before "?", is `path`."""
        return [r for r in self.requests if path in (r.path, r.path.partition("?")[0])]

    def close(self) -> None:
        """Stop accepting, shut down every client socket and join the server threads.

        Threads that are still running after CLOSE_TIMEOUT seconds are left behind as
        daemon threads, and their sockets are closed anyway.
        """
        if self._stopping.is_set():
            return
        self._stopping.set()
        deadline = time.monotonic() + CLOSE_TIMEOUT
        self._accept_thread.join(CLOSE_TIMEOUT)
        self._listener.close()

        with self._lock:
            connections = list(self._connections)
            handlers = list(self._handlers)
        for conn in connections:
            _shutdown(conn)
        for thread in handlers:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            leftover = list(self._connections)
        for conn in leftover:
            logger.warning("closing socket of a handler that did not exit: %s", conn)
            conn.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            readable, _, _ = select.select([self._listener], [], [], POLL_INTERVAL)
            if not readable:
                continue
            try:
                conn, _ = self._listener.accept()
            except OSError as error:
                logger.warning("accept failed on port %d: %s", self.port, error)
                continue
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            with self._lock:
                if self._stopping.is_set():
                    conn.close()
                    return
                self._connections.add(conn)
                self._handlers.add(thread)
            thread.start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            self._serve(conn)
        except OSError as error:
            # Clients often disconnect first, for example after a read timeout.
            logger.debug("connection %s ended: %s", conn, error)
        finally:
            with self._lock:
                self._connections.discard(conn)
                self._handlers.discard(threading.current_thread())
            conn.close()

    def _serve(self, conn: socket.socket) -> None:
        try:
            request = self._read_request(conn)
        except BadRequest as error:
            logger.debug("rejected request: %s", error)
            bad_request = Reply.html(BAD_REQUEST_BODY, status=400)
            conn.sendall(encode_head(bad_request) + encode_body(bad_request))
            return
        if request is None:
            return

        with self._lock:
            self._requests.append(request)
            reply = self._next_reply(request.path)
        head = encode_head(reply)
        body = b"" if request.method == "HEAD" else encode_body(reply)
        self._send(conn, reply, head, body)

    def _next_reply(self, target: str) -> Reply:
        """Return the next reply for `target` and advance its route. Call with the lock held."""
        path = target if target in self._routes else target.partition("?")[0]
        replies = self._routes.get(path)
        if replies is None:
            return Reply.html(NOT_FOUND_BODY, status=404)
        index = min(self._served_counts[path], len(replies) - 1)
        self._served_counts[path] += 1
        return replies[index]

    def _send(self, conn: socket.socket, reply: Reply, head: bytes, body: bytes) -> None:
        if reply.behaviour == "hang":
            self._wait_for_close(conn)
        elif reply.behaviour == "stall_after":
            conn.sendall(head + body[: reply.stall_bytes])
            self._wait_for_close(conn)
        elif reply.behaviour == "drip":
            self._drip(conn, head + body, reply.drip_interval)
        else:
            conn.sendall(head + body)
            if reply.behaviour == "normal":
                conn.shutdown(socket.SHUT_WR)

    def _drip(self, conn: socket.socket, data: bytes, interval: float) -> None:
        for index in range(len(data)):
            if index and self._stopping.wait(interval):
                return
            conn.sendall(data[index : index + 1])

    def _recv(self, conn: socket.socket) -> bytes:
        """Return the next bytes from `conn`, or b"" at end of stream or on close()."""
        while not self._stopping.is_set():
            readable, _, _ = select.select([conn], [], [], POLL_INTERVAL)
            if readable:
                return conn.recv(65536)
        return b""

    def _wait_for_close(self, conn: socket.socket) -> None:
        """Block until the client closes the connection or close() is called.

        Bytes that arrive in the meantime are discarded.
        """
        while self._recv(conn):
            pass

    def _read_request(self, conn: socket.socket) -> RecordedRequest | None:
        """Read one request, or return None if the connection ends before its head does.

        Only a Content-Length request body is read. A chunked request body is not.
        """
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            if len(buffer) > MAX_HEADER_BYTES:
                raise BadRequest(f"request head is larger than {MAX_HEADER_BYTES} bytes")
            data = self._recv(conn)
            if not data:
                return None
            buffer += data

        head, _, body = buffer.partition(b"\r\n\r\n")
        method, target, headers = parse_head(head)
        length_text = headers.get("Content-Length", "0")
        if not length_text.isdigit():
            raise BadRequest(f"invalid Content-Length {length_text!r}")
        length = int(length_text)
        while len(body) < length:
            data = self._recv(conn)
            if not data:
                return None
            body += data
        return RecordedRequest(method, target, headers, body[:length])


def _shutdown(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # The socket is already closed or not connected.
