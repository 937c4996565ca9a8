"""Crash safety of the snapshot store: a sync killed at any write step, or stopped by a
full disk, leaves files that load and validate, and the next run recovers.

The kills are real: a child process runs `scraper sync` with os.replace or os.fsync
wrapped so that it sends itself SIGKILL around the Nth call. SIGKILL stops the process
without any cleanup, but the kernel keeps what it already wrote, so these tests cover a
crashed or killed run, not a power loss.
"""

from __future__ import annotations

import errno
import gzip
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from scraper.errors import StoreError
from scraper.store import Store
from tests.conftest import FIXTURES, PAGE_PATH, ROOT, fixture_bytes, store_files, write_config
from tests.httpserver import Reply

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="needs SIGKILL and /proc/self/fd"
)

SOURCE = "capi-image-builder"
EXPECTED = yaml.safe_load((FIXTURES / "expected-rows.yaml").read_text(encoding="utf-8"))
ROWS_3 = EXPECTED["captures"]["matrix-3rows-asc.html"]
ROWS_4 = EXPECTED["captures"]["matrix-4rows-asc.html"]

CHANGED_2 = f"{SOURCE}: changed, version 2 (1 added, 0 removed, 0 changed)\n"
UNCHANGED_2 = f"{SOURCE}: unchanged, version 2\n"

# A sync that writes a new version renames four files into place, in this order:
# captures/000002.html.gz, versions/000002.yaml, latest.yaml and state.yaml.
WRITE_STEPS = 4

# Runs killed by the parent after a random delay. Each costs about one process start,
# measured at 0.4 s on a 2-core machine, so 60 runs took about 20 s there.
RANDOM_KILL_RUNS = 60
RANDOM_KILL_SEED = 20250611

# Runs `scraper sync` with one os function wrapped. Arguments: the function name
# (replace or fsync), the position (before, after, or count to only count the calls)
# and N. With before/after the process kills itself around the Nth call.
KILL_SCRIPT = """\
import os, signal, sys
name, position, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
real = getattr(os, name)
calls = 0

def wrapper(*args, **kwargs):
    global calls
    calls += 1
    if calls == target and position == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    result = real(*args, **kwargs)
    if calls == target and position == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return result

setattr(os, name, wrapper)
from scraper import cli
code = cli.main(["sync"])
print(f"calls={calls}", file=sys.stderr)
sys.exit(code)
"""


def source_folder(workdir: Path) -> Path:
    return workdir / "snapshots" / SOURCE


def versions_folder(workdir: Path) -> Path:
    return source_folder(workdir) / "versions"


def is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp")


def temporaries(workdir: Path) -> list[str]:
    return sorted(
        str(path.relative_to(workdir))
        for path in source_folder(workdir).rglob("*")
        if is_temporary(path)
    )


def version_names(workdir: Path) -> list[str]:
    return sorted(
        name for name in os.listdir(versions_folder(workdir)) if not is_temporary(Path(name))
    )


def restore_store(workdir: Path, files: dict[str, bytes]) -> None:
    """Make the snapshots folder contain exactly ``files`` (as returned by store_files)."""
    snapshots = workdir / "snapshots"
    shutil.rmtree(snapshots, ignore_errors=True)
    for name, data in files.items():
        path = snapshots / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def start_child(workdir: Path, argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *argv],
        cwd=workdir,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_child(process: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return process.returncode, out, err


def run_kill_script(workdir: Path, name: str, position: str, target: int) -> tuple[int, str, str]:
    process = start_child(workdir, ["-c", KILL_SCRIPT, name, position, str(target)])
    return finish_child(process)


def count_calls(workdir: Path, name: str) -> int:
    """Return how many times a clean sync from the current store calls os.<name>."""
    code, out, err = run_kill_script(workdir, name, "count", 0)
    assert code == 0, err
    assert out == CHANGED_2
    return int(err.rsplit("calls=", 1)[1])


@pytest.fixture
def store_v1(workdir, server, scraper):
    """Create a store containing version 1 (3 rows), then serve the 4-row page.

    Returns the store's files, so a test can put it back between runs.
    """
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    write_config(workdir, server.url(PAGE_PATH), lock_timeout=5)
    result = scraper("sync")
    assert result.code == 0, result.err
    assert version_names(workdir) == ["000001.yaml"]
    assert Store(workdir / "snapshots", SOURCE).load_version(1)["rows"] == ROWS_3
    server.route(PAGE_PATH, Reply.html(fixture_bytes("matrix-4rows-asc.html")))
    return store_files(workdir / "snapshots")


def load_every_file(workdir: Path, label: str) -> None:
    for path in sorted(source_folder(workdir).rglob("*")):
        if not path.is_file() or is_temporary(path):
            continue
        if path.name.endswith(".html.gz"):
            try:
                gzip.decompress(path.read_bytes())
            except (OSError, EOFError) as error:
                pytest.fail(f"{label}: {path.name} is not a whole gzip file: {error}")
            continue
        try:
            yaml.safe_load(path.read_bytes())
        except yaml.YAMLError as error:
            pytest.fail(f"{label}: {path.name} is not valid YAML: {error}")


def check_killed_store(workdir: Path, version_1: bytes, label: str) -> None:
    """Check the store right after a killed run: every file is whole and valid."""
    load_every_file(workdir, label)
    store = Store(workdir / "snapshots", SOURCE)

    names = version_names(workdir)
    assert names in (["000001.yaml"], ["000001.yaml", "000002.yaml"]), label
    numbers = store.version_numbers()
    for number in numbers:
        try:
            store.load_version(number)
        except StoreError as error:
            pytest.fail(f"{label}: {error}")
    assert store.version_path(1).read_bytes() == version_1, label
    if numbers == [1, 2]:
        assert store.load_version(2)["rows"] == ROWS_4, label

    complete_versions = [store.version_path(number).read_bytes() for number in numbers]
    assert store.latest_path.read_bytes() in complete_versions, label

    try:
        state = store.load_state()
    except StoreError as error:
        pytest.fail(f"{label}: {error}")
    if state is not None:
        # A state file ahead of the newest version would make the next run skip a number.
        assert state["last_version"] <= numbers[-1], label


def check_recovery(workdir: Path, scraper, version_1: bytes, label: str) -> None:
    """Run sync twice after a killed run: the store ends with exactly versions 1 and 2."""
    result = scraper("sync")
    assert result.code == 0, f"{label}: {result.err}"
    assert result.out in (CHANGED_2, UNCHANGED_2), label

    store = Store(workdir / "snapshots", SOURCE)
    assert version_names(workdir) == ["000001.yaml", "000002.yaml"], label
    assert temporaries(workdir) == [], label
    assert store.version_path(1).read_bytes() == version_1, label
    assert store.load_version(2)["rows"] == ROWS_4, label
    assert store.load_version(2)["diff"]["previous_version"] == 1, label
    assert store.latest_path.read_bytes() == store.version_path(2).read_bytes(), label
    assert store.load_state()["last_version"] == 2, label

    again = scraper("sync")
    assert again.code == 0, f"{label}: {again.err}"
    assert again.out == UNCHANGED_2, label


# Killed at each write step


def test_sync_fsyncs_before_rename(store_v1, workdir, scraper, monkeypatch):
    calls = []
    real_fsync = os.fsync
    real_replace = os.replace

    folder = source_folder(workdir)

    def recording_fsync(descriptor):
        if is_inside(descriptor_path(descriptor), folder):
            calls.append("fsync folder" if is_folder(descriptor) else "fsync file")
        real_fsync(descriptor)

    def recording_replace(source, target):
        if is_inside(target, folder):
            calls.append(f"replace {Path(target).name}")
        real_replace(source, target)

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", recording_fsync)
        patch.setattr(os, "replace", recording_replace)
        result = scraper("sync")
    assert result.code == 0, result.err
    assert result.out == CHANGED_2

    renames = [call for call in calls if call.startswith("replace")]
    assert renames == [
        "replace 000002.html.gz",
        "replace 000002.yaml",
        "replace latest.yaml",
        "replace state.yaml",
    ]
    for index, call in enumerate(calls):
        if call.startswith("replace"):
            assert calls[index - 1] == "fsync file", f"{call} without an fsync before it"


@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize("function", ["replace", "fsync"])
def test_kill_at_each_step(store_v1, workdir, scraper, function, position):
    version_1 = store_v1["capi-image-builder/versions/000001.yaml"]
    total = count_calls(workdir, function)
    assert total >= WRITE_STEPS
    restore_store(workdir, store_v1)

    for target in range(1, total + 1):
        label = f"killed {position} os.{function} call {target} of {total}"
        code, out, err = run_kill_script(workdir, function, position, target)
        assert code == -signal.SIGKILL, f"{label}: exit {code}: {err}"
        check_killed_store(workdir, version_1, label)
        check_recovery(workdir, scraper, version_1, label)
        restore_store(workdir, store_v1)


@pytest.mark.parametrize(
    ("position", "target"),
    [("after", 2), ("before", 4)],
    ids=["after-version", "before-state"],
)
def test_kill_change_reported_again(store_v1, workdir, scraper, position, target):
    # The killed run wrote version 2 but never printed it or recorded it in state.yaml.
    # The next run must still report the change, or `sync --exit-code` in a cron job
    # never exits 1 for it.
    code, out, err = run_kill_script(workdir, "replace", position, target)
    assert code == -signal.SIGKILL, err
    assert version_names(workdir) == ["000001.yaml", "000002.yaml"]

    result = scraper("sync", "--exit-code")
    assert result.out == CHANGED_2
    assert result.code == 1


def test_random_kills(store_v1, workdir, scraper):
    version_1 = store_v1["capi-image-builder/versions/000001.yaml"]
    started = time.monotonic()
    code, out, err = finish_child(start_child(workdir, ["-m", "scraper", "sync"]))
    typical = time.monotonic() - started
    assert code == 0, err
    assert out == CHANGED_2
    restore_store(workdir, store_v1)

    generator = random.Random(RANDOM_KILL_SEED)
    outcomes: dict[str, int] = {}
    for run in range(RANDOM_KILL_RUNS):
        delay = generator.uniform(0, typical)
        label = f"run {run}, seed {RANDOM_KILL_SEED}, killed after {delay:.3f} s"
        process = start_child(workdir, ["-m", "scraper", "sync"])
        time.sleep(delay)
        process.kill()
        code, out, err = finish_child(process)
        assert code in (0, -signal.SIGKILL), f"{label}: exit {code}: {err}"

        check_killed_store(workdir, version_1, label)
        outcome = f"exit {code}, versions {len(version_names(workdir))}"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        check_recovery(workdir, scraper, version_1, label)
        restore_store(workdir, store_v1)
    # Printed only at the end, because the in-process runs read the captured output.
    print(f"seed {RANDOM_KILL_SEED}, typical run {typical:.3f} s, outcomes {outcomes}")


# Full disk


def disk_full_error() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def failing_on_call(real, failing_calls: set[int], matches):
    """Wrap ``real`` so that its calls numbered in ``failing_calls`` raise ENOSPC.

    Only calls for which ``matches(*args)`` is true are numbered and can fail.
    """
    count = 0

    def wrapper(*args, **kwargs):
        nonlocal count
        if matches(*args):
            count += 1
            if count in failing_calls:
                raise disk_full_error()
        return real(*args, **kwargs)

    return wrapper


def is_inside(path, folder: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def descriptor_path(descriptor: int) -> str:
    # Linux names the file behind a descriptor in /proc.
    return os.readlink(f"/proc/self/fd/{descriptor}")


def is_folder(descriptor: int) -> bool:
    return stat.S_ISDIR(os.fstat(descriptor).st_mode)


def store_rename(folder: Path):
    """Return a predicate for os.replace calls that rename a file into ``folder``."""
    return lambda source, target: is_inside(target, folder)


def store_file_fsync(folder: Path):
    """Return a predicate for os.fsync calls on a file (not a folder) inside ``folder``."""
    return lambda descriptor: (
        not is_folder(descriptor) and is_inside(descriptor_path(descriptor), folder)
    )


def store_folder_fsync(folder: Path):
    """Return a predicate for os.fsync calls on ``folder`` or a folder inside it."""
    return lambda descriptor: (
        is_folder(descriptor) and is_inside(descriptor_path(descriptor), folder)
    )


def check_disk_full(workdir: Path, scraper, result, before: dict[str, bytes]) -> None:
    assert result.code == 5
    assert "disk is full" in result.err
    assert temporaries(workdir) == []
    assert store_files(workdir / "snapshots") == before

    retried = scraper("sync")
    assert retried.code == 0, retried.err
    assert retried.out == CHANGED_2
    assert version_names(workdir) == ["000001.yaml", "000002.yaml"]
    store = Store(workdir / "snapshots", SOURCE)
    assert store.latest_path.read_bytes() == store.version_path(2).read_bytes()
    assert store.load_state()["last_version"] == 2


@pytest.mark.parametrize("target", range(1, WRITE_STEPS + 1))
def test_disk_full_at_rename(store_v1, workdir, scraper, monkeypatch, target):
    matches = store_rename(source_folder(workdir))
    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", failing_on_call(os.replace, {target}, matches))
        result = scraper("sync")
    check_disk_full(workdir, scraper, result, store_v1)


@pytest.mark.parametrize("target", range(1, WRITE_STEPS + 1))
def test_disk_full_at_fsync(store_v1, workdir, scraper, monkeypatch, target):
    matches = store_file_fsync(source_folder(workdir))
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", failing_on_call(os.fsync, {target}, matches))
        result = scraper("sync")
    check_disk_full(workdir, scraper, result, store_v1)


@pytest.mark.parametrize("target", range(1, WRITE_STEPS + 1))
def test_disk_full_at_folder_fsync(store_v1, workdir, scraper, monkeypatch, target):
    # The rename before this fsync has already happened, so the run may either report
    # the error and roll back, or finish. Either way the store must be whole.
    matches = store_folder_fsync(source_folder(workdir))
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", failing_on_call(os.fsync, {target}, matches))
        result = scraper("sync")
    assert result.code in (0, 5), result.err
    if result.code == 5:
        check_disk_full(workdir, scraper, result, store_v1)
        return
    assert result.out == CHANGED_2
    assert temporaries(workdir) == []
    store = Store(workdir / "snapshots", SOURCE)
    assert version_names(workdir) == ["000001.yaml", "000002.yaml"]
    assert store.latest_path.read_bytes() == store.version_path(2).read_bytes()
    assert store.load_state()["last_version"] == 2


@pytest.mark.parametrize("target", range(1, WRITE_STEPS + 1))
@pytest.mark.parametrize("function", ["replace", "fsync"])
def test_disk_stays_full(store_v1, workdir, scraper, monkeypatch, function, target):
    # Once the disk is full, every later write of new data to the store fails too.
    # Renaming a kept backup back into place needs no free space, so those renames
    # are not counted as failing writes.
    folder = source_folder(workdir)
    if function == "fsync":
        matches = store_file_fsync(folder)
    else:
        renames = store_rename(folder)
        matches = lambda source, target: (  # noqa: E731
            renames(source, target) and not str(source).endswith(".backup.tmp")
        )
    every_later_call = set(range(target, 1000))
    with monkeypatch.context() as patch:
        real = getattr(os, function)
        patch.setattr(os, function, failing_on_call(real, every_later_call, matches))
        result = scraper("sync")
    check_disk_full(workdir, scraper, result, store_v1)
