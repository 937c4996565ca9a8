"""Shared fixtures: a scripted HTTP server, config files and CLI runners."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from scraper import cli
from tests.httpserver import Reply, ScriptedServer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
CASES = FIXTURES / "cases"
PAGE_PATH = "/byoos/capi-image-builder/comp-matrix-capi-builder/"

# Fetch settings that keep failing runs short; individual tests override them.
FAST_FETCH = {
    "connect_timeout": 2,
    "read_timeout": 2,
    "deadline": 10,
    "retries": 1,
    "backoff_factor": 0,
    "max_retry_after": 5,
}

SOURCE_COLUMNS = """\
    key: kubernetes_version
    columns:
      - header: Kubernetes Version
        field: kubernetes_version
        parse: version
      - header: Dependencies Version
        field: dependencies
        parse: key_value
"""


def fixture_bytes(name: str) -> bytes:
    """Return the bytes of a file under fixtures/ (``cases/...`` for the fault cases)."""
    return (FIXTURES / name).read_bytes()


def many_rows_page(count: int, base: str = "matrix-4rows-asc.html") -> bytes:
    """Return the capture ``base`` with its rows replaced by ``count`` rows 1.0.0, 1.1.0 ..."""
    page = fixture_bytes(base)
    start = page.index(b"<tbody>") + len(b"<tbody>")
    end = page.index(b"</tbody>")
    rows = b"".join(
        b"<tr><td>1.%d.0</td><td><code>cni_version</code> = 1.2.0</td></tr>" % number
        for number in range(count)
    )
    return page[:start] + rows + page[end:]


def write_config(
    folder: Path,
    url: str,
    fetch: dict | None = None,
    extra_source: str = "",
    lock_timeout: float = 5,
) -> Path:
    """Write a one-source config.yaml into ``folder`` and return its path."""
    settings = {**FAST_FETCH, **(fetch or {})}
    fetch_lines = "".join(f"  {key}: {_yaml_value(value)}\n" for key, value in settings.items())
    text = (
        "snapshots_dir: snapshots\n"
        f"lock_timeout: {lock_timeout}\n"
        "fetch:\n"
        f"{fetch_lines}"
        "sources:\n"
        "  - name: capi-image-builder\n"
        f"    url: {url}\n"
        f"{SOURCE_COLUMNS}"
        f"{extra_source}"
    )
    path = folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _yaml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(item) for item in value) + "]"
    return str(value)


def store_files(folder: Path) -> dict[str, bytes]:
    """Return every file under ``folder`` (relative path to bytes), for exact comparisons."""
    if not folder.exists():
        return {}
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@dataclass
class Result:
    """Exit code and captured output of one CLI run."""

    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def no_proxy_for_loopback(monkeypatch):
    """Keep requests to the local test server away from any proxy set in the environment."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@functools.cache
def snapshot_schema_validator():
    """Return a validator of scraper/schemas/snapshot.schema.json, built once."""
    from importlib.resources import files

    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    folder = files("scraper").joinpath("schemas")
    schemas = {
        name: json.loads(folder.joinpath(name).read_text(encoding="utf-8"))
        for name in ("snapshot.schema.json", "diff.schema.json")
    }
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in schemas.values()
    )
    return Draft202012Validator(schemas["snapshot.schema.json"], registry=registry)


class SnapshotSchemaCheck:
    """A check of the snapshot files under a folder against the published schema.

    Only files that the store's own validator accepts are checked. Several tests damage
    snapshots on purpose to test that the store rejects them: cut short, edited, or with
    an unquoted number or a newer schema_version under a recomputed checksum, so a valid
    checksum does not prove that scraper wrote a file. The store validates every version
    before it writes it, so this rule still covers every file the tool writes. It also
    checks that the schema accepts whatever the store accepts.
    """

    def __init__(self, folder: Path | None, validator=None) -> None:
        self.folder = folder
        self.validator = validator or snapshot_schema_validator()
        self.skipped: list[Path] = []

    def files(self) -> list[Path]:
        from scraper.store import VERSION_FILE

        found = []
        if self.folder is None:
            return found
        for parent, _, names in os.walk(self.folder):
            folder = Path(parent)
            for name in names:
                if name == "latest.yaml" or (
                    folder.name == "versions" and VERSION_FILE.match(name)
                ):
                    found.append(folder / name)
        return sorted(found)

    def run(self) -> list[Path]:
        """Validate the files and return them; fail the test on a schema error."""
        from scraper.errors import StoreError
        from scraper.store import validate_snapshot

        validated, problems, self.skipped = [], [], []
        for path in self.files():
            versions = path.parent.name == "versions"
            source = path.parent.parent.name if versions else path.parent.name
            document = _read_yaml(path)
            number = int(path.stem) if versions else _version_of(document)
            try:
                validate_snapshot(document, source, number, path)
            except StoreError:
                self.skipped.append(path)
                continue
            validated.append(path)
            for error in self.validator.iter_errors(document):
                problems.append(f"{path}: {error.json_path}: {error.message}")
        if problems:
            pytest.fail(
                "snapshot files do not match scraper/schemas/snapshot.schema.json:\n"
                + "\n".join(problems),
                pytrace=False,
            )
        return validated


def _read_yaml(path: Path) -> object:
    import yaml

    from scraper import yamlio

    try:
        return yamlio.load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def _version_of(document: object) -> int:
    # -1 matches no version, so the store rejects a latest.yaml without one.
    number = document.get("version") if isinstance(document, dict) else None
    return number if type(number) is int else -1


@pytest.fixture(autouse=True)
def snapshot_schema_check(request):
    """Validate, after each test, the snapshots written under its tmp_path."""
    folder = None
    if "tmp_path" in request.fixturenames:
        folder = request.getfixturevalue("tmp_path")
    check = SnapshotSchemaCheck(folder)
    yield check
    check.run()


@pytest.fixture
def server():
    """A scripted HTTP server on 127.0.0.1 with a free port, closed after the test."""
    with ScriptedServer() as scripted:
        yield scripted


@pytest.fixture
def serve_page(server):
    """Route the matrix page path to a fixture file (or bytes) and return its URL."""

    def serve(content: str | bytes, path: str = PAGE_PATH, **reply) -> str:
        body = fixture_bytes(content) if isinstance(content, str) else content
        server.route(path, Reply.html(body, **reply))
        return server.url(path)

    return serve


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty working folder that is also the current directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def scraper(workdir, capsys):
    """Run the CLI in this process with the working folder's config.yaml."""

    def run(*args: str) -> Result:
        code = cli.main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def scraper_process(workdir):
    """Run ``python -m scraper`` as a real process in the working folder."""

    def run(*args: str, timeout: float = 60) -> Result:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        completed = subprocess.run(
            [sys.executable, "-m", "scraper", *args],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)

    return run
