"""Tests of the configuration file. An invalid file exits with 2 and a message that names
the file, the key path and a fix. Relative paths resolve against the file's folder."""

from __future__ import annotations

import pytest

from scraper.config import load_config
from scraper.errors import ConfigError
from tests.conftest import ROOT, fixture_bytes, write_config

SOURCE = "capi-image-builder"
LIVE_URL = "https://docs.spectrocloud.com/byoos/capi-image-builder/comp-matrix-capi-builder/"

# A valid config whose page is a local file, so a config that wrongly passes
# validation fails at fetch (exit 3) or syncs the file, and never reaches a network.
BASE = """\
snapshots_dir: snapshots
lock_timeout: 5
fetch:
  retries: 0
  backoff_factor: 0
sources:
  - name: capi-image-builder
    url: page.html
    key: kubernetes_version
    columns:
      - header: Kubernetes Version
        field: kubernetes_version
        parse: version
      - header: Dependencies Version
        field: dependencies
        parse: key_value
"""

SECOND_SOURCE = """\
  - name: {name}
    url: page.html
    key: kubernetes_version
    columns:
      - header: Kubernetes Version
        field: kubernetes_version
"""


def edited(old: str, new: str, text: str = BASE) -> str:
    """Return ``text`` with ``old`` replaced once; fail loudly if ``old`` is absent."""
    assert text.count(old) == 1, old
    return text.replace(old, new)


def source_named(name: str) -> str:
    return edited("  - name: capi-image-builder\n", f"  - name: {name!r}\n")


# (id, config text, key path, problem, fix). The key path of a YAML syntax error is
# its line number.
INVALID = [
    (
        "unknown-top-key",
        BASE + "colour: red\n",
        "colour",
        "unknown key",
        "remove it or fix its spelling",
    ),
    (
        "unknown-source-key",
        edited("    url: page.html\n", "    url: page.html\n    tags: [a]\n"),
        "sources[0].tags",
        "unknown key",
        "known keys here: name, url, key, columns, table, fetch",
    ),
    (
        "unknown-fetch-key",
        edited("  retries: 0\n", "  retries: 0\n  retry: 3\n"),
        "fetch.retry",
        "unknown key",
        "remove it or fix its spelling",
    ),
    (
        "unknown-source-fetch-key",
        edited("    url: page.html\n", "    url: page.html\n    fetch:\n      timeout: 5\n"),
        "sources[0].fetch.timeout",
        "unknown key",
        "known keys here: connect_timeout, read_timeout, deadline",
    ),
    (
        "retries-string",
        edited("  retries: 0\n", '  retries: "3"\n'),
        "fetch.retries",
        "expected a whole number, found '3' (str)",
        "write a whole number here",
    ),
    (
        "retries-bool",
        edited("  retries: 0\n", "  retries: true\n"),
        "fetch.retries",
        "expected a whole number, found True (bool)",
        "write a whole number here",
    ),
    (
        "deadline-negative",
        edited("  retries: 0\n", "  retries: 0\n  deadline: -1\n"),
        "fetch.deadline",
        "-1 is below the minimum 0.1",
        "use a value of at least 0.1",
    ),
    (
        "source-retries-string",
        edited("    url: page.html\n", '    url: page.html\n    fetch:\n      retries: "3"\n'),
        "sources[0].fetch.retries",
        "expected a whole number",
        "write a whole number here",
    ),
    (
        "lock-timeout-string",
        edited("lock_timeout: 5\n", "lock_timeout: soon\n"),
        "lock_timeout",
        "expected a number, found 'soon' (str)",
        "write a number here",
    ),
    (
        "missing-url",
        edited("    url: page.html\n", ""),
        "sources[0].url",
        "missing",
        "add the page's http(s) URL",
    ),
    (
        "missing-sources",
        "snapshots_dir: snapshots\n",
        "sources",
        "missing",
        "add a list with at least one source",
    ),
    (
        "empty-sources",
        "snapshots_dir: snapshots\nsources: []\n",
        "sources",
        "is empty",
        "add at least one source",
    ),
    (
        "sources-not-list",
        "sources:\n  name: capi-image-builder\n",
        "sources",
        "expected a list of sources",
        "write a list of sources here",
    ),
    (
        "duplicate-source-name",
        BASE + SECOND_SOURCE.format(name=SOURCE),
        "sources[1].name",
        "duplicate source name 'capi-image-builder', also used by sources[0]",
        "give each source a unique name",
    ),
    (
        "name-parent-folder",
        source_named("../evil"),
        "sources[0].name",
        "invalid source name '../evil'",
        "it becomes a folder name",
    ),
    (
        "name-with-space",
        source_named("Has Space"),
        "sources[0].name",
        "invalid source name 'Has Space'",
        "use 1 to 64 lowercase letters",
    ),
    (
        "name-absolute",
        source_named("/abs"),
        "sources[0].name",
        "invalid source name '/abs'",
        "it becomes a folder name",
    ),
    (
        "ftp-url",
        edited("    url: page.html\n", "    url: ftp://127.0.0.1/page.html\n"),
        "sources[0].url",
        "unsupported URL scheme 'ftp'",
        "use an http://, https:// or file:// URL, or a file path",
    ),
    (
        "http-url-without-host",
        edited("    url: page.html\n", "    url: http:///page.html\n"),
        "sources[0].url",
        "URL 'http:///page.html' has no host",
        "write the full URL",
    ),
    (
        "invalid-parse-kind",
        edited("        parse: key_value\n", "        parse: keyvalue\n"),
        "sources[0].columns[1].parse",
        "invalid value 'keyvalue'",
        "use one of: version, key_value, text",
    ),
    (
        "key-not-a-field",
        edited("    key: kubernetes_version\n", "    key: k8s\n"),
        "sources[0].key",
        "'k8s' is not the field of any column",
        "set it to one of: kubernetes_version, dependencies",
    ),
    (
        "key-parsed-key-value",
        edited("    key: kubernetes_version\n", "    key: dependencies\n"),
        "sources[0].key",
        "the key column 'dependencies' is parsed as key_value",
        "must use parse: version or parse: text",
    ),
    (
        "duplicate-header",
        edited("      - header: Dependencies Version\n", "      - header: Kubernetes Version\n"),
        "sources[0].columns[1].header",
        "duplicate header 'Kubernetes Version'",
        "each column needs its own header text",
    ),
    (
        "duplicate-header-spacing",
        edited(
            "      - header: Dependencies Version\n",
            "      - header: '  kubernetes   VERSION '\n",
        ),
        "sources[0].columns[1].header",
        "duplicate header",
        "each column needs its own header text",
    ),
    (
        "duplicate-field",
        edited("        field: dependencies\n", "        field: kubernetes_version\n"),
        "sources[0].columns[1].field",
        "duplicate field 'kubernetes_version'",
        "each column needs its own field name",
    ),
    (
        "invalid-selector",
        edited(
            "    url: page.html\n",
            "    url: page.html\n    table:\n      selector: 'table['\n",
        ),
        "sources[0].table.selector",
        "invalid CSS selector 'table['",
        "write a CSS selector that matches the table element",
    ),
    (
        "cron-four-fields",
        BASE + "schedule:\n  cron: '0 2 * *'\n",
        "schedule.cron",
        "invalid cron expression '0 2 * *': it has 4 fields, not five",
        "write 'minute hour day month weekday'",
    ),
    (
        "keep-days-above-max",
        BASE + "retention:\n  keep_days: 1000000000\n",
        "retention.keep_days",
        "1000000000 is above the maximum 36500 (100 years)",
        "use a value from 0.001 to 36500, or null to keep versions of any age",
    ),
    (
        "keep-days-just-above-max",
        BASE + "retention:\n  keep_days: 36500.5\n",
        "retention.keep_days",
        "36500.5 is above the maximum 36500",
        "use a value from 0.001 to 36500",
    ),
    (
        "keep-days-infinite",
        BASE + "retention:\n  keep_days: .inf\n",
        "retention.keep_days",
        "inf is above the maximum 36500",
        "use a value from 0.001 to 36500",
    ),
    (
        # Larger than a float can hold: float() would raise OverflowError.
        "keep-days-400-digits",
        BASE + "retention:\n  keep_days: 1" + "0" * 400 + "\n",
        "retention.keep_days",
        "is above the maximum 36500",
        "use a value from 0.001 to 36500",
    ),
    (
        "source-keep-days-above-max",
        edited("    url: page.html\n", "    url: page.html\n    retention:\n      keep_days: 36501\n"),
        "sources[0].retention.keep_days",
        "36501 is above the maximum 36500",
        "use a value from 0.001 to 36500",
    ),
    (
        "keep-versions-above-max",
        BASE + "retention:\n  keep_versions: 1000001\n",
        "retention.keep_versions",
        "1000001 is above the maximum 1000000",
        "use a value from 1 to 1000000, or null to keep every version",
    ),
    (
        "keep-versions-400-digits",
        BASE + "retention:\n  keep_versions: 1" + "0" * 400 + "\n",
        "retention.keep_versions",
        "is above the maximum 1000000",
        "use a value from 1 to 1000000",
    ),
    (
        "keep-versions-float",
        BASE + "retention:\n  keep_versions: 2.5\n",
        "retention.keep_versions",
        "expected a whole number, found 2.5 (float)",
        "write a whole number here",
    ),
    (
        "lock-timeout-400-digits",
        edited("lock_timeout: 5\n", "lock_timeout: 1" + "0" * 400 + "\n"),
        "lock_timeout",
        "10000000000000000000... (401 digits) is above the maximum 1e+09",
        "use a smaller value",
    ),
    (
        "lock-timeout-huge-float",
        edited("lock_timeout: 5\n", "lock_timeout: 1.0e+300\n"),
        "lock_timeout",
        "is above the maximum 1e+09",
        "use a smaller value",
    ),
    (
        "integer-over-4300-digits",
        edited("lock_timeout: 5\n", "lock_timeout: 1" + "0" * 5000 + "\n"),
        "invalid YAML",
        "invalid YAML: Exceeds the limit (4300 digits)",
        "put it in quotes to keep it as text",
    ),
    (
        "impossible-date-scalar",
        BASE + "metrics_file: 2026-02-30\n",
        "invalid YAML",
        "invalid YAML: day is out of range for month",
        "fix the value",
    ),
    (
        "yaml-syntax",
        edited("lock_timeout: 5\n", "lock_timeout: 5\n  bad: indent\n"),
        "line 3, column 6",
        "invalid YAML: mapping values are not allowed here",
        "fix the syntax at the line and column shown",
    ),
    (
        "duplicate-top-key",
        BASE + "snapshots_dir: other\n",
        "line 17",
        "found duplicate key 'snapshots_dir'",
        "remove one of the two keys",
    ),
    (
        "duplicate-source-key",
        edited("    url: page.html\n", "    url: page.html\n    url: other.html\n"),
        "line 9",
        "found duplicate key 'url'",
        "remove one of the two keys",
    ),
    (
        "empty-file",
        "",
        "(top level)",
        "the file is empty",
        "add a 'sources' list",
    ),
    (
        "comments-only",
        "# sources come later\n",
        "(top level)",
        "the file is empty",
        "add a 'sources' list",
    ),
    (
        "top-level-list",
        "- capi-image-builder\n",
        "(top level)",
        "expected a mapping, found ['capi-image-builder'] (list)",
        "write it as 'key: value' lines",
    ),
]


@pytest.fixture
def page(workdir):
    """Copy the 4-row capture to page.html in the working folder."""
    path = workdir / "page.html"
    path.write_bytes(fixture_bytes("matrix-4rows-asc.html"))
    return path


def write_text(workdir, text: str):
    path = workdir / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_base_config_syncs(workdir, page, scraper):
    path = write_text(workdir, BASE)

    result = scraper("sync", "--config", str(path))
    assert result.code == 0, result.err
    assert result.out == f"{SOURCE}: changed, version 1 (4 added, 0 removed, 0 changed)\n"


@pytest.mark.parametrize(
    ("text", "key_path", "problem", "fix"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_config_cli(workdir, page, scraper, text, key_path, problem, fix):
    path = write_text(workdir, text)

    result = scraper("sync", "--config", str(path))
    assert result.code == 2
    assert result.out == ""
    assert f"config: {path}: " in result.err
    assert key_path in result.err
    assert problem in result.err
    assert fix in result.err
    assert not (workdir / "snapshots").exists()


@pytest.mark.parametrize(
    ("text", "key_path", "problem", "fix"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_config_load(workdir, text, key_path, problem, fix):
    path = write_text(workdir, text)

    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    assert int(error.exit_code) == 2
    assert error.where == str(path)
    assert key_path in error.message
    assert problem in error.message
    assert fix in (error.hint or "")


@pytest.mark.parametrize(
    ("text", "key_path"),
    [
        (
            edited("    url: page.html\n", "    url: page.html\n    tags: [a]\n"),
            "sources[0].tags: unknown key",
        ),
        (edited("  retries: 0\n", '  retries: "3"\n'), "fetch.retries: expected a whole number"),
        (BASE + "colour: red\n", "colour: unknown key"),
    ],
    ids=["source-key", "retries", "top-key"],
)
def test_invalid_config_default_path(workdir, page, scraper, text, key_path):
    write_text(workdir, text)

    result = scraper("sync")
    assert result.code == 2
    assert "config: config.yaml: " in result.err
    assert key_path in result.err


def test_prune_keep_days_above_max(workdir, page, scraper):
    # Before the limit, prune computed now - 1e9 days and crashed with exit code 70.
    write_text(workdir, BASE + "retention:\n  keep_days: 1000000000\n")

    result = scraper("prune", "--dry-run")
    assert result.code == 2
    assert result.out == ""
    assert result.err == (
        "scraper: error: config: config.yaml: retention.keep_days: 1000000000 is above "
        "the maximum 36500 (100 years) (use a value from 0.001 to 36500, or null to "
        "keep versions of any age)\n"
    )


@pytest.mark.parametrize("setting", ["keep_days: 36500", "keep_versions: 1000000"])
def test_retention_maximum_accepted(workdir, page, scraper, setting):
    write_text(workdir, BASE)
    for fixture in ("matrix-3rows-asc.html", "matrix-4rows-asc.html"):
        page.write_bytes(fixture_bytes(fixture))
        assert scraper("sync").code == 0
    write_text(workdir, BASE + f"retention:\n  {setting}\n")

    result = scraper("prune", "--dry-run")
    assert result.code == 0, result.err
    assert result.out == f"{SOURCE}: would delete no versions\n"


def test_missing_config_file(workdir, scraper):
    path = workdir / "nowhere" / "config.yaml"

    result = scraper("sync", "--config", str(path))
    assert result.code == 2
    assert f"config: {path}: configuration file not found" in result.err
    assert "--config" in result.err
    assert not (workdir / "snapshots").exists()


def test_missing_default_config(workdir, scraper):
    result = scraper("sync")
    assert result.code == 2
    assert "config: config.yaml: configuration file not found" in result.err
    assert "--config PATH" in result.err


@pytest.mark.parametrize("command", ["show", "diff", "history"])
def test_invalid_config_other_commands(workdir, scraper, command):
    path = write_text(workdir, BASE + "colour: red\n")

    result = scraper(command, "--config", str(path))
    assert result.code == 2
    assert f"config: {path}: colour: unknown key" in result.err


def test_relative_paths_use_config_folder(workdir, scraper, monkeypatch):
    config_folder = workdir / "conf"
    (config_folder / "pages").mkdir(parents=True)
    (config_folder / "pages" / "page.html").write_bytes(fixture_bytes("matrix-4rows-asc.html"))
    text = edited("snapshots_dir: snapshots\n", "snapshots_dir: data/snaps\n")
    text = edited("    url: page.html\n", "    url: pages/page.html\n", text)
    path = config_folder / "config.yaml"
    path.write_text(text, encoding="utf-8")
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config(path)
    assert config.snapshots_dir == (config_folder / "data" / "snaps").resolve()
    assert config.sources[0].url == str((config_folder / "pages" / "page.html").resolve())

    result = scraper("sync", "--config", str(path))
    assert result.code == 0, result.err
    assert result.out == f"{SOURCE}: changed, version 1 (4 added, 0 removed, 0 changed)\n"
    version = config_folder / "data" / "snaps" / SOURCE / "versions" / "000001.yaml"
    assert version.is_file()
    assert list(elsewhere.iterdir()) == []
    assert not (workdir / "snapshots").exists()

    show_result = scraper("show", "--config", str(path), "--format", "json")
    assert show_result.code == 0, show_result.err
    assert '"version": 1' in show_result.out


def test_relative_config_path(workdir, scraper):
    config_folder = workdir / "conf"
    config_folder.mkdir()
    (config_folder / "page.html").write_bytes(fixture_bytes("matrix-4rows-asc.html"))
    (config_folder / "config.yaml").write_text(BASE, encoding="utf-8")

    result = scraper("sync", "--config", "conf/config.yaml")
    assert result.code == 0, result.err
    assert (config_folder / "snapshots" / SOURCE / "versions" / "000001.yaml").is_file()
    assert not (workdir / "snapshots").exists()


def test_shipped_config_loads():
    config = load_config(ROOT / "config.yaml")
    assert [source.name for source in config.sources] == [SOURCE, "palette-cli"]
    source = config.sources[0]
    assert source.url == LIVE_URL
    assert [column.header for column in source.columns] == [
        "Kubernetes Version",
        "Dependencies Version",
    ]
    assert [column.parse for column in source.columns] == ["version", "key_value"]
    assert source.key == "kubernetes_version"
    assert config.snapshots_dir == (ROOT / "snapshots").resolve()
    assert config.schedule.cron == "0 2 * * *"
    palette = config.sources[1]
    assert palette.url == "https://docs.spectrocloud.com/downloads/palette-cli-compatibility-matrix/"
    assert [column.header for column in palette.columns] == ["Palette Release", "CLI Version"]
    assert [column.parse for column in palette.columns] == ["version", "version"]
    assert palette.key == "palette_release"


def test_largest_timeouts_sync(workdir, serve_page, scraper):
    # Every timeout at the largest accepted value still works end to end: none of
    # them overflows the socket timeout or the deadline arithmetic.
    largest = 10**9
    write_config(
        workdir,
        serve_page("matrix-4rows-asc.html"),
        fetch={"connect_timeout": largest, "read_timeout": largest, "deadline": largest},
        lock_timeout=largest,
    )
    result = scraper("sync")
    assert result.code == 0, result.err
    assert result.out == f"{SOURCE}: changed, version 1 (4 added, 0 removed, 0 changed)\n"
