"""Tests of the scripted HTTP server, driven through requests."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.httpserver import CaseInsensitiveDict, Reply, ScriptedServer

# (connect, read) timeouts in seconds for requests that are expected to succeed.
TIMEOUT = (1.0, 1.0)

pytestmark = pytest.mark.timeout(5)


@pytest.fixture
def server():
    with ScriptedServer() as scripted:
        yield scripted


def wait_until(condition, timeout: float = 1.0) -> bool:
    """Poll `condition` every 10 ms and return whether it became true within `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_normal_reply_sends_body_and_headers(server):
    server.route("/page", Reply(status=201, headers={"X-Test": "yes"}, body=b"hello"))

    response = requests.get(server.url("/page"), timeout=TIMEOUT)

    assert response.status_code == 201
    assert response.reason == "Created"
    assert response.headers["X-Test"] == "yes"
    assert response.headers["Content-Length"] == "5"
    assert response.headers["Connection"] == "close"
    assert response.content == b"hello"


def test_custom_reason_phrase(server):
    server.route("/", Reply(status=299, reason="Scripted"))

    response = requests.get(server.url(), timeout=TIMEOUT)

    assert response.status_code == 299
    assert response.reason == "Scripted"


def test_repeated_headers_from_list(server):
    headers = [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    server.route("/", Reply(headers=headers))

    response = requests.get(server.url(), timeout=TIMEOUT)

    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert response.cookies["a"] == "1"
    assert response.cookies["b"] == "2"


def test_replies_rotate_then_last_repeats(server):
    server.route("/seq", Reply(body=b"one"), Reply(body=b"two"), Reply(body=b"three"))

    bodies = [requests.get(server.url("/seq"), timeout=TIMEOUT).content for _ in range(5)]

    assert bodies == [b"one", b"two", b"three", b"three", b"three"]


def test_route_again_restarts_sequence(server):
    server.route("/seq", Reply(body=b"one"), Reply(body=b"two"))
    requests.get(server.url("/seq"), timeout=TIMEOUT)
    server.route("/seq", Reply(body=b"new"), Reply(body=b"later"))

    response = requests.get(server.url("/seq"), timeout=TIMEOUT)

    assert response.content == b"new"


def test_route_matches_path_without_query(server):
    server.route("/search", Reply(body=b"results"))
    server.route("/search?q=exact", Reply(body=b"exact match"))

    plain = requests.get(server.url("/search?q=other"), timeout=TIMEOUT)
    exact = requests.get(server.url("/search?q=exact"), timeout=TIMEOUT)

    assert plain.content == b"results"
    assert exact.content == b"exact match"
    assert [r.path for r in server.requests_for("/search")] == [
        "/search?q=other",
        "/search?q=exact",
    ]


def test_unknown_path_returns_404_html(server):
    response = requests.get(server.url("/missing"), timeout=TIMEOUT)

    assert response.status_code == 404
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"404 Not Found" in response.content
    assert [r.path for r in server.requests] == ["/missing"]


def test_head_sends_headers_without_body(server):
    server.route("/", Reply(body=b"0123456789"))

    response = requests.head(server.url(), timeout=TIMEOUT)

    assert response.status_code == 200
    assert response.headers["Content-Length"] == "10"
    assert response.content == b""
    assert server.requests[0].method == "HEAD"


def test_html_sets_content_type(server):
    server.route("/utf8", Reply.html("café"))
    server.route("/latin1", Reply.html("café", charset="iso-8859-1"))
    server.route("/none", Reply.html(b"<p>x</p>", charset=None, status=203))

    utf8 = requests.get(server.url("/utf8"), timeout=TIMEOUT)
    latin1 = requests.get(server.url("/latin1"), timeout=TIMEOUT)
    no_charset = requests.get(server.url("/none"), timeout=TIMEOUT)

    assert utf8.headers["Content-Type"] == "text/html; charset=utf-8"
    assert utf8.content == "café".encode("utf-8")
    assert latin1.headers["Content-Type"] == "text/html; charset=iso-8859-1"
    assert latin1.content == "café".encode("iso-8859-1")
    assert no_charset.headers["Content-Type"] == "text/html"
    assert no_charset.status_code == 203


def test_redirect_is_followed(server):
    server.route("/old", Reply.redirect("/new"))
    server.route("/new", Reply.html("<p>moved</p>"))

    response = requests.get(server.url("/old"), timeout=TIMEOUT)

    assert response.url == server.url("/new")
    assert response.history[0].status_code == 302
    assert response.history[0].headers["Location"] == "/new"
    assert response.content == b"<p>moved</p>"
    assert [r.path for r in server.requests] == ["/old", "/new"]


def test_request_headers_are_recorded(server):
    server.route("/etag", Reply(status=304))

    requests.get(server.url("/etag"), headers={"If-None-Match": '"v1"'}, timeout=TIMEOUT)

    [recorded] = server.requests_for("/etag")
    assert recorded.method == "GET"
    assert recorded.path == "/etag"
    assert recorded.headers["If-None-Match"] == '"v1"'
    assert recorded.headers["if-none-match"] == '"v1"'
    assert "IF-NONE-MATCH" in recorded.headers
    assert recorded.headers["Host"] == f"127.0.0.1:{server.port}"


def test_request_body_is_recorded(server):
    server.route("/form", Reply())

    requests.post(server.url("/form"), data=b"a=1&b=2", timeout=TIMEOUT)

    [recorded] = server.requests
    assert recorded.method == "POST"
    assert recorded.body == b"a=1&b=2"


def test_requests_for_filters_by_path(server):
    server.route("/a", Reply())
    server.route("/b", Reply())

    for path in ("/a", "/b", "/a"):
        requests.get(server.url(path), timeout=TIMEOUT)

    assert len(server.requests) == 3
    assert [r.path for r in server.requests_for("/a")] == ["/a", "/a"]
    assert [r.path for r in server.requests_for("/b")] == ["/b"]


def test_hang_causes_read_timeout(server):
    server.route("/hang", Reply(behaviour="hang"))

    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(server.url("/hang"), timeout=(1.0, 0.2))
    assert len(server.requests_for("/hang")) == 1


def test_stall_after_times_out_mid_body(server):
    server.route("/stall", Reply(body=b"0123456789", behaviour="stall_after", stall_bytes=4))

    response = requests.get(server.url("/stall"), stream=True, timeout=(1.0, 0.2))
    chunks = response.iter_content(chunk_size=4)

    assert response.headers["Content-Length"] == "10"
    assert next(chunks) == b"0123"
    # Response.iter_content in requests 2.34 re-raises urllib3's ReadTimeoutError as
    # ConnectionError, not as ReadTimeout.
    with pytest.raises(requests.exceptions.ConnectionError):
        next(chunks)
    response.close()


def test_drip_delivers_bytes_slowly(server):
    interval = 0.005
    server.route("/drip", Reply(body=b"abcd", behaviour="drip", drip_interval=interval))

    start = time.monotonic()
    # The read timeout is shorter than the whole transfer but longer than one interval,
    # so the response only arrives if the bytes keep coming one by one.
    response = requests.get(server.url("/drip"), timeout=(1.0, 0.15))
    elapsed = time.monotonic() - start

    head = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\n"
    minimum = (len(head) + 4 - 1) * interval
    assert response.content == b"abcd"
    assert elapsed >= minimum
    assert elapsed > 0.15


def test_close_early_raises_chunked_encoding_error(server):
    server.route("/short", Reply(body=b"abc", content_length=10, behaviour="close_early"))

    response = requests.get(server.url("/short"), stream=True, timeout=TIMEOUT)

    assert response.headers["Content-Length"] == "10"
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        response.content


def test_close_delimited_body(server):
    body = b"x" * 5000 + b"end"
    server.route("/stream", Reply(body=body, content_length=None))

    response = requests.get(server.url("/stream"), timeout=TIMEOUT)

    assert "Content-Length" not in response.headers
    assert "Transfer-Encoding" not in response.headers
    assert response.content == body


def test_chunked_body_arrives_in_chunks(server):
    server.route("/chunked", Reply(body=b"hello chunked world", chunked=True, chunk_size=5))

    response = requests.get(server.url("/chunked"), stream=True, timeout=TIMEOUT)
    chunks = list(response.raw.read_chunked(decode_content=False))

    assert response.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in response.headers
    assert chunks == [b"hello", b" chun", b"ked w", b"orld"]


def test_chunked_body_via_content(server):
    server.route("/chunked", Reply(body=b"hello chunked world", chunked=True, chunk_size=3))

    response = requests.get(server.url("/chunked"), timeout=TIMEOUT)

    assert response.content == b"hello chunked world"


def get_in_thread(url: str) -> tuple[threading.Thread, list[BaseException]]:
    """Start a GET with a 5 s read timeout in a thread and collect what it raises."""
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            requests.get(url, timeout=(1.0, 5.0)).content
        except requests.RequestException as error:
            errors.append(error)

    thread = threading.Thread(target=fetch, daemon=True)
    thread.start()
    return thread, errors


def test_close_is_fast_while_handler_hangs():
    server = ScriptedServer()
    server.route("/hang", Reply(behaviour="hang"))
    client, errors = get_in_thread(server.url("/hang"))
    assert wait_until(lambda: len(server.requests) == 1)

    start = time.monotonic()
    server.close()
    elapsed = time.monotonic() - start
    client.join(1.0)

    assert elapsed < 1.0
    assert not client.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], requests.exceptions.ConnectionError)


def test_close_is_fast_with_stalled_handlers():
    server = ScriptedServer()
    server.route("/stall", Reply(body=b"0123456789", behaviour="stall_after", stall_bytes=2))
    server.route("/drip", Reply(body=b"abcdef", behaviour="drip", drip_interval=0.5))
    server.route("/hang", Reply(behaviour="hang"))
    clients = [get_in_thread(server.url(path))[0] for path in ("/stall", "/drip", "/hang")]
    assert wait_until(lambda: len(server.requests) == 3)

    start = time.monotonic()
    server.close()
    elapsed = time.monotonic() - start
    server.close()

    assert elapsed < 1.0
    for client in clients:
        client.join(1.0)
        assert not client.is_alive()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.url("/stall"), timeout=(0.5, 0.5))


def test_context_manager_closes_server():
    with ScriptedServer() as server:
        server.route("/", Reply(body=b"ok"))
        assert requests.get(server.url(), timeout=TIMEOUT).content == b"ok"

    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.url(), timeout=(0.5, 0.5))


def test_reply_rejects_invalid_arguments():
    with pytest.raises(ValueError, match="behaviour"):
        Reply(behaviour="explode")
    with pytest.raises(ValueError, match="content_length"):
        Reply(content_length=-1)
    with pytest.raises(ValueError, match="stall_bytes"):
        Reply(stall_bytes=-1)
    with pytest.raises(ValueError, match="chunk_size"):
        Reply(chunk_size=0)
    with pytest.raises(ValueError, match="ISO-8859-1"):
        Reply(headers={"X-Name": "snow ☃"})
    with pytest.raises(TypeError, match="bytes"):
        Reply(body="text")


def test_route_and_url_reject_invalid_arguments(server):
    with pytest.raises(ValueError, match="at least one Reply"):
        server.route("/")
    with pytest.raises(ValueError, match="start with '/'"):
        server.url("page")


def test_case_insensitive_dict():
    headers = CaseInsensitiveDict([("Content-Type", "text/plain")])

    assert headers["content-type"] == "text/plain"
    assert list(headers) == ["Content-Type"]
    assert headers == {"CONTENT-TYPE": "text/plain"}
    del headers["CONTENT-type"]
    assert len(headers) == 0
