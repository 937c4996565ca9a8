"""Notifications through Apprise: change, failing, recovered and stale messages, the
outbox that keeps undelivered messages for the next run, ${NAME} expansion and secrets.

The webhook is a route on the same ScriptedServer as the page: a ``json://`` URL makes
Apprise POST a JSON body {"version", "title", "message", "type", ...} to it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import yaml

from scraper import notify
from scraper.config import load_config
from scraper.locks import FileLock
from scraper.records import RecordBook
from tests.conftest import PAGE_PATH, fixture_bytes, store_files, write_config
from tests.httpserver import Reply

SOURCE = "capi-image-builder"
HOOK_PATH = "/hook"
NOT_FOUND_PAGE = b"<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>\n"
SECRET = "SECRET-TOKEN"


def write_notify_config(
    folder: Path, page_url: str, urls: list[str], fetch: dict | None = None, **settings
) -> Path:
    """Write config.yaml with a top-level ``notify`` section for the one source."""
    path = write_config(folder, page_url, fetch={"retries": 0, **(fetch or {})})
    section = yaml.safe_dump({"notify": {"urls": urls, **settings}}, sort_keys=False)
    with path.open("a", encoding="utf-8") as stream:
        stream.write(section)
    return path


def hook_url(server, path: str = HOOK_PATH) -> str:
    return server.url(path).replace("http://", "json://", 1)


def messages(server, path: str = HOOK_PATH) -> list[dict]:
    """Return the JSON bodies the webhook received, including failed deliveries."""
    return [json.loads(request.body) for request in server.requests_for(path)]


def titles(server, path: str = HOOK_PATH) -> list[str]:
    return [message["title"] for message in messages(server, path)]


def outbox_entries(folder: Path) -> list[dict]:
    outbox = folder / ".scraper-state" / "outbox"
    return [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(outbox.glob("*.json"))
    ]


def changed_pin_page() -> bytes:
    """The 4-row capture with containerd for 1.29.4 raised from 1.7.13 to 1.7.16."""
    page = fixture_bytes("matrix-4rows-asc.html")
    row_start = page.index(b"<tr><td>1.29.4</td>")
    row_end = page.index(b"</tr>", row_start)
    row = page[row_start:row_end].replace(
        b"<code>containerd_version</code> = 1.7.13",
        b"<code>containerd_version</code> = 1.7.16",
    )
    assert row != page[row_start:row_end]
    return page[:row_start] + row + page[row_end:]


@pytest.fixture(autouse=True)
def no_retry_pause(monkeypatch):
    """Retry a failed delivery at once instead of after RETRY_PAUSE seconds."""
    monkeypatch.setattr(notify, "RETRY_PAUSE", 0)


@pytest.fixture
def hooked(workdir, server):
    """The 3-row page and a webhook that returns HTTP 200, both wired into config.yaml."""
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    server.route(HOOK_PATH, Reply(status=200))
    write_notify_config(
        workdir, server.url(PAGE_PATH), [hook_url(server)], failure_threshold=2
    )
    return server


def serve_not_found(server) -> None:
    server.route(PAGE_PATH, Reply.html(NOT_FOUND_PAGE, status=404))


# ---------------------------------------------------------------------------
# Change messages


def test_change_message(hooked, scraper):
    assert scraper("sync").code == 0
    first = len(messages(hooked))
    hooked.route(PAGE_PATH, Reply.html(changed_pin_page()))
    assert scraper("sync").code == 0
    sent = messages(hooked)[first:]

    assert len(sent) == 1
    assert sent[0]["title"] == (
        "capi-image-builder: matrix changed, version 2 (1 added, 0 removed, 1 changed)"
    )
    assert sent[0]["type"] == "info"
    assert sent[0]["message"].splitlines() == [
        (
            "+ 1.30.4 added: dependencies.cni_version 1.3.0, "
            "dependencies.containerd_version 1.7.13, dependencies.crictl_version 1.28.0"
        ),
        "~ 1.29.4 dependencies.containerd_version: 1.7.13 → 1.7.16",
    ]


def test_change_message_fragments(hooked, scraper):
    assert scraper("sync").code == 0
    hooked.route(PAGE_PATH, Reply.html(changed_pin_page()))
    assert scraper("sync").code == 0
    body = messages(hooked)[-1]["message"]
    assert "+ 1.30.4 added" in body
    assert "dependencies.containerd_version: 1.7.13 → 1.7.16" in body


def test_unchanged_no_message(hooked, scraper):
    assert scraper("sync").code == 0
    first = len(messages(hooked))
    assert scraper("sync").code == 0
    assert len(messages(hooked)) == first


# ---------------------------------------------------------------------------
# Failing, recovered and stale


def test_failing_after_threshold(hooked, scraper):
    assert scraper("sync").code == 0
    start = len(messages(hooked))
    serve_not_found(hooked)

    assert scraper("sync").code == 3
    after_first = titles(hooked)[start:]
    assert scraper("sync").code == 3
    after_second = titles(hooked)[start:]
    assert scraper("sync").code == 3
    after_third = messages(hooked)[start:]

    assert after_first == []
    assert after_second == ["capi-image-builder: sync failing (2 runs in a row)"]
    assert len(after_third) == 1
    assert after_third[0]["type"] == "failure"
    assert "HTTP 404 Not Found" in after_third[0]["message"]


def test_recovered_once(hooked, scraper):
    assert scraper("sync").code == 0
    start = len(messages(hooked))
    serve_not_found(hooked)
    codes = [scraper("sync").code for _ in range(3)]
    hooked.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    assert scraper("sync").code == 0
    assert scraper("sync").code == 0
    sent = messages(hooked)[start:]

    assert codes == [3, 3, 3]
    assert [message["title"] for message in sent] == [
        "capi-image-builder: sync failing (2 runs in a row)",
        "capi-image-builder: sync recovered after 3 failed runs",
    ]
    assert sent[1]["type"] == "success"


def test_no_recovered_below_threshold(hooked, scraper):
    assert scraper("sync").code == 0
    start = len(messages(hooked))
    serve_not_found(hooked)
    assert scraper("sync").code == 3
    hooked.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    assert scraper("sync").code == 0
    assert titles(hooked)[start:] == []


def test_stale_once(workdir, server, scraper):
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    server.route(HOOK_PATH, Reply(status=200))
    # 0.01 h (36 s) is the smallest stale_after_hours the configuration accepts.
    write_notify_config(
        workdir,
        server.url(PAGE_PATH),
        [hook_url(server)],
        failure_threshold=10,
        stale_after_hours=0.01,
    )
    assert scraper("sync").code == 0
    start = len(messages(server))
    with RecordBook(workdir / ".scraper-state").updating(SOURCE) as record:
        record.last_success = "2026-01-01T00:00:00Z"
    serve_not_found(server)

    assert scraper("sync").code == 3
    after_first = messages(server)[start:]
    assert scraper("sync").code == 3
    after_second = messages(server)[start:]

    assert [message["title"] for message in after_first] == [
        "capi-image-builder: no successful sync since 2026-01-01T00:00:00Z"
    ]
    assert after_first[0]["type"] == "warning"
    assert "more than 0.01 hours" in after_first[0]["message"]
    assert after_second == after_first


def test_not_stale_when_recent(hooked, scraper):
    assert scraper("sync").code == 0
    start = len(messages(hooked))
    serve_not_found(hooked)
    assert scraper("sync").code == 3
    assert titles(hooked)[start:] == []


# ---------------------------------------------------------------------------
# Delivery failures and the outbox


def test_failed_delivery_exit_code(hooked, workdir, scraper):
    hooked.route(HOOK_PATH, Reply(status=500))
    result = scraper("sync")
    assert result.code == 0
    assert (
        result.out
        == "capi-image-builder: changed, version 1 (3 added, 0 removed, 0 changed)\n"
    )
    assert "changed notification not delivered (attempt 1)" in result.err


def test_failed_delivery_kept(hooked, workdir, scraper):
    hooked.route(HOOK_PATH, Reply(status=500))
    assert scraper("sync").code == 0
    entries = outbox_entries(workdir)

    assert [
        (entry["kind"], entry["attempts"], entry["delivered"]) for entry in entries
    ] == [("changed", 1, [])]
    assert len(messages(hooked)) == notify.SEND_ATTEMPTS


def test_failed_delivery_attempts_counted(hooked, workdir, scraper):
    hooked.route(HOOK_PATH, Reply(status=500))
    assert scraper("sync").code == 0
    assert scraper("sync").code == 0
    assert [entry["attempts"] for entry in outbox_entries(workdir)] == [2]


def test_failed_delivery_sent_next_run(hooked, workdir, scraper):
    hooked.route(HOOK_PATH, Reply(status=500))
    assert scraper("sync").code == 0
    failed = len(messages(hooked))
    hooked.route(HOOK_PATH, Reply(status=200))
    result = scraper("sync")
    delivered = messages(hooked)[failed:]

    assert result.code == 0
    assert [message["title"] for message in delivered] == [
        "capi-image-builder: matrix changed, version 1 (3 added, 0 removed, 0 changed)"
    ]
    assert outbox_entries(workdir) == []


def test_unset_variable_sync(workdir, server, scraper, monkeypatch):
    monkeypatch.delenv("HOOK_URL", raising=False)
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    write_notify_config(workdir, server.url(PAGE_PATH), ["${HOOK_URL}"])

    result = scraper("sync")

    assert result.code == 2
    assert "environment variable HOOK_URL is not set" in result.err
    assert server.requests == []
    assert store_files(workdir) == {
        "config.yaml": (workdir / "config.yaml").read_bytes()
    }


def test_unset_variable_schedule(workdir, server, scraper, monkeypatch):
    monkeypatch.delenv("HOOK_URL", raising=False)
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    write_notify_config(
        workdir, server.url(PAGE_PATH), ["json://127.0.0.1:9/${HOOK_URL}"]
    )

    result = scraper("schedule", "--run-now")

    assert result.code == 2
    assert "environment variable HOOK_URL is not set" in result.err
    assert server.requests == []


# ---------------------------------------------------------------------------
# Secrets


def test_secret_never_written(workdir, server, scraper_process, scraper, monkeypatch):
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    server.route(HOOK_PATH, Reply(status=500))
    monkeypatch.setenv("HOOK_URL", hook_url(server, f"{HOOK_PATH}?token={SECRET}"))
    write_notify_config(
        workdir, server.url(PAGE_PATH), ["${HOOK_URL}"], failure_threshold=1
    )

    # A real process shows everything that reaches stderr, Apprise's and urllib3's
    # loggers included. The second run, in this process, adds a failing message.
    first = scraper_process("-vv", "sync")
    serve_not_found(server)
    second = scraper("-vv", "sync")
    files = store_files(workdir)

    assert first.code == 0
    assert second.code == 3
    assert "delivery failed" in first.err
    assert len(outbox_entries(workdir)) == 2
    assert SECRET not in first.out + first.err
    assert SECRET not in second.out + second.err
    assert [name for name, data in files.items() if SECRET.encode() in data] == []


def test_secret_not_in_invalid_url_error(workdir, server, scraper, monkeypatch):
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    monkeypatch.setenv(
        "HOOK_URL", f"nosuchservice://user:{SECRET}@127.0.0.1/?token={SECRET}"
    )
    write_notify_config(workdir, server.url(PAGE_PATH), ["${HOOK_URL}"])

    result = scraper("sync")

    assert result.code == 2
    assert "Apprise does not recognise the URL ${HOOK_URL}" in result.err
    assert SECRET not in result.out + result.err
    assert server.requests == []


# ---------------------------------------------------------------------------
# Several URLs for one source


def test_two_urls_one_failing(workdir, server, scraper):
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    server.route("/good", Reply(status=200))
    server.route("/bad", Reply(status=500))
    urls = [hook_url(server, "/good"), hook_url(server, "/bad")]
    write_notify_config(workdir, server.url(PAGE_PATH), urls)

    assert scraper("sync").code == 0
    after_first = outbox_entries(workdir)
    assert scraper("sync").code == 0
    after_retry = outbox_entries(workdir)
    server.route("/bad", Reply(status=200))
    assert scraper("sync").code == 0

    good = titles(server, "/good")
    bad = titles(server, "/bad")
    title = (
        "capi-image-builder: matrix changed, version 1 (3 added, 0 removed, 0 changed)"
    )
    assert good == [title]
    assert bad == [title] * (2 * notify.SEND_ATTEMPTS + 1)
    assert [entry["attempts"] for entry in after_first] == [1]
    assert [len(entry["delivered"]) for entry in after_first] == [1]
    assert [entry["attempts"] for entry in after_retry] == [2]
    assert outbox_entries(workdir) == []


def test_concurrent_flush_sends_once(workdir, server):
    # Two runs at once both flush the outbox, for example a scheduled job and a
    # manual sync, or two jobs of one scheduler. Each message must still be sent once.
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    # The reply takes about 0.4 s, so both flushes read the pending file before
    # either has finished sending it.
    server.route(
        HOOK_PATH,
        Reply(status=200, body=b"ok" * 20, behaviour="drip", drip_interval=0.003),
    )
    path = write_notify_config(workdir, server.url(PAGE_PATH), [hook_url(server)])
    config = load_config(path)
    outbox = notify.Outbox(config.run_state_dir)
    outbox.add(notify.failing_event(SOURCE, 3, "HTTP 404 Not Found"))

    barrier = threading.Barrier(2)

    def flush() -> None:
        barrier.wait()
        notify.Outbox(config.run_state_dir).flush(config)

    threads = [threading.Thread(target=flush) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert titles(server) == ["capi-image-builder: sync failing (3 runs in a row)"]
    assert outbox_entries(workdir) == []


def test_outbox_lock_unusable(hooked, workdir, scraper):
    # A folder where the outbox's lock file belongs: the sync's result is kept, the
    # error is logged, and the metrics are still written.
    lock = workdir / ".scraper-state" / "outbox" / ".lock"
    lock.mkdir(parents=True)
    result = scraper("sync")
    assert result.code == 0, result.err
    assert result.out == (
        "capi-image-builder: changed, version 1 (3 added, 0 removed, 0 changed)\n"
    )
    assert "notification outbox not flushed" in result.err
    assert str(lock) in result.err
    assert (workdir / ".scraper-state" / "metrics.prom").exists()


def test_run_record_lock_waits_lock_timeout(workdir, server, scraper):
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    write_config(workdir, server.url(PAGE_PATH), lock_timeout=0.2)
    lock_path = workdir / ".scraper-state" / "sources" / f"{SOURCE}.lock"
    lock_path.parent.mkdir(parents=True)
    with FileLock(lock_path, timeout=0):
        result = scraper("sync")
    assert result.code == 0, result.err
    assert "run record not updated" in result.err
    assert "another run has held its lock for more than 0.2 s" in result.err
    assert "wait for the other run to finish, or raise lock_timeout" in result.err
    assert "delete the file" not in result.err
