"""Several `scraper sync` processes on one store: the lock serializes their writes, a
run that cannot get the lock fails cleanly, and version numbers are never reused."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from filelock import FileLock

from scraper.store import Store
from tests.conftest import FIXTURES, PAGE_PATH, ROOT, fixture_bytes, store_files, write_config
from tests.httpserver import Reply, ScriptedServer

SOURCE = "capi-image-builder"
EXPECTED = yaml.safe_load((FIXTURES / "expected-rows.yaml").read_text(encoding="utf-8"))
ROWS_4 = EXPECTED["captures"]["matrix-4rows-asc.html"]

CHANGED_2 = f"{SOURCE}: changed, version 2 (1 added, 0 removed, 0 changed)\n"
UNCHANGED_2 = f"{SOURCE}: unchanged, version 2\n"

PROCESSES = 8
# Seconds the server waits for all PROCESSES requests before it sends the page anyway.
BARRIER_TIMEOUT = 20


class BarrierServer(ScriptedServer):
    """A ScriptedServer that, once armed, delays each response until ``parties``
    requests are in flight, so the clients all receive the page at about the same time.
    """

    def __init__(self) -> None:
        super().__init__()
        self.barrier: threading.Barrier | None = None
        self.passed = 0
        self._passed_lock = threading.Lock()

    def arm(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties)

    def _send(self, conn, reply, head, body) -> None:
        if self.barrier is not None:
            try:
                self.barrier.wait(BARRIER_TIMEOUT)
            except threading.BrokenBarrierError:
                pass
            else:
                with self._passed_lock:
                    self.passed += 1
        super()._send(conn, reply, head, body)


def source_folder(workdir: Path) -> Path:
    return workdir / "snapshots" / SOURCE


def version_names(workdir: Path) -> list[str]:
    return sorted(os.listdir(source_folder(workdir) / "versions"))


def changed_pin_page() -> bytes:
    """The 4-row capture with containerd for 1.30.4 raised from 1.7.13 to 1.7.16."""
    page = fixture_bytes("matrix-4rows-asc.html")
    row_start = page.index(b"<tr><td>1.30.4</td>")
    row_end = page.index(b"</tr>", row_start)
    row = page[row_start:row_end].replace(
        b"<code>containerd_version</code> = 1.7.13", b"<code>containerd_version</code> = 1.7.16"
    )
    assert row != page[row_start:row_end]
    return page[:row_start] + row + page[row_end:]


def start_sync(workdir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scraper", "sync"],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return process.returncode, out, err


def test_eight_syncs_one_version(workdir, scraper):
    with BarrierServer() as server:
        server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
        write_config(workdir, server.url(PAGE_PATH), lock_timeout=30)
        first = scraper("sync")
        assert first.code == 0, first.err
        version_1 = (source_folder(workdir) / "versions" / "000001.yaml").read_bytes()

        server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-4rows-asc.html")))
        server.arm(PROCESSES)
        processes = [start_sync(workdir) for _ in range(PROCESSES)]
        results = [finish(process) for process in processes]
        passed = server.passed

    # Every process fetched the page while all the others were fetching it too.
    assert passed == PROCESSES
    for code, out, err in results:
        assert code == 0, err
    outputs = [out for code, out, err in results]
    assert outputs.count(CHANGED_2) == 1, outputs
    assert outputs.count(UNCHANGED_2) == PROCESSES - 1, outputs

    store = Store(workdir / "snapshots", SOURCE)
    assert version_names(workdir) == ["000001.yaml", "000002.yaml"]
    assert store.version_path(1).read_bytes() == version_1
    assert store.load_version(2)["rows"] == ROWS_4
    assert store.load_state()["last_version"] == 2
    assert store.latest_path.read_bytes() == store.version_path(2).read_bytes()


def test_held_lock_times_out(workdir, serve_page, scraper, scraper_process):
    write_config(workdir, serve_page("matrix-3rows-asc.html"), lock_timeout=0.5)
    assert scraper("sync").code == 0
    serve_page("matrix-4rows-asc.html")
    before = store_files(workdir / "snapshots")

    with FileLock(str(source_folder(workdir) / ".lock"), timeout=0):
        blocked = scraper_process("sync")
    assert blocked.code == 5
    assert "another run has held the lock for more than 0.5 s" in blocked.err
    assert store_files(workdir / "snapshots") == before

    released = scraper_process("sync")
    assert released.code == 0, released.err
    assert released.out == CHANGED_2
    assert version_names(workdir) == ["000001.yaml", "000002.yaml"]


def test_numbers_survive_deletion(workdir, serve_page, scraper_process):
    write_config(workdir, serve_page("matrix-3rows-asc.html"))
    assert scraper_process("sync").code == 0
    versions = source_folder(workdir) / "versions"
    store = Store(workdir / "snapshots", SOURCE)

    serve_page("matrix-4rows-asc.html")
    run_a = scraper_process("sync")
    assert run_a.code == 0, run_a.err
    assert run_a.out == CHANGED_2

    # Change B arrives after version 2 was deleted: it must not take number 2 again.
    (versions / "000002.yaml").unlink()
    serve_page(changed_pin_page())
    run_b = scraper_process("sync")
    assert run_b.code == 0, run_b.err
    assert run_b.out == f"{SOURCE}: changed, version 3 (1 added, 0 removed, 0 changed)\n"
    assert version_names(workdir) == ["000001.yaml", "000003.yaml"]
    assert store.load_version(3)["diff"]["previous_version"] == 1
    assert store.load_version(3)["rows"][3]["dependencies"]["containerd_version"] == "1.7.16"
    assert store.latest_path.read_bytes() == store.version_path(3).read_bytes()
    assert store.load_state()["last_version"] == 3

    # With every version file gone, state.yaml alone still stores the highest number.
    for path in versions.iterdir():
        path.unlink()
    serve_page("matrix-4rows-asc.html")
    run_a_again = scraper_process("sync")
    assert run_a_again.code == 0, run_a_again.err
    assert run_a_again.out == f"{SOURCE}: changed, version 4 (4 added, 0 removed, 0 changed)\n"
    assert version_names(workdir) == ["000004.yaml"]
    assert store.load_version(4)["diff"]["previous_version"] is None
    assert store.load_version(4)["rows"] == ROWS_4
    assert store.latest_path.read_bytes() == store.version_path(4).read_bytes()
    assert store.load_state()["last_version"] == 4


class HoldingServer(ScriptedServer):
    """A ScriptedServer that holds back the response ``held`` until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.held: Reply | None = None
        self.arrived = threading.Event()
        self.release = threading.Event()

    def _send(self, conn, reply, head, body) -> None:
        if reply is self.held:
            self.arrived.set()
            self.release.wait(BARRIER_TIMEOUT)
        super()._send(conn, reply, head, body)


def start_sync_url(workdir: Path, url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "scraper", "sync", "--url", url],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_older_fetch_not_written_over_newer(workdir):
    # Run A fetches first but gets its page late; run B fetches a second later and
    # writes its page. A's older page must not become the latest version.
    with HoldingServer() as server:
        server.held = Reply.html(fixture_bytes("matrix-3rows-asc.html"))
        server.route("/slow/", server.held)
        server.route("/fast/", Reply.html(fixture_bytes("matrix-4rows-asc.html")))
        write_config(workdir, server.url(PAGE_PATH), lock_timeout=30)
        slow = start_sync_url(workdir, server.url("/slow/"))
        assert server.arrived.wait(BARRIER_TIMEOUT)
        # Stored times have whole seconds, so B must fetch in a later second.
        time.sleep(1.1)
        fast = finish(start_sync_url(workdir, server.url("/fast/")))
        server.release.set()
        slow_result = finish(slow)

    assert fast == (0, f"{SOURCE}: changed, version 1 (4 added, 0 removed, 0 changed)\n", "")
    code, out, err = slow_result
    assert code == 0, err
    assert out == f"{SOURCE}: unchanged, version 1\n"
    assert "version 1, fetched at" in err
    assert "is newer than this run's page" in err
    store = Store(workdir / "snapshots", SOURCE)
    assert version_names(workdir) == ["000001.yaml"]
    assert store.load_version(1)["rows"] == ROWS_4
