"""The command line: options, output formats, exit codes and their documentation."""

from __future__ import annotations

import argparse
import json
import re
import shlex

import pytest
import yaml

from scraper import __version__, cli
from scraper.errors import ExitCode
from tests.conftest import FIXTURES, ROOT, write_config

README = (ROOT / "README.md").read_text(encoding="utf-8")
EXPECTED = yaml.safe_load((FIXTURES / "expected-rows.yaml").read_text(encoding="utf-8"))
ROWS_3 = EXPECTED["captures"]["matrix-3rows-asc.html"]
ROWS_4 = EXPECTED["captures"]["matrix-4rows-asc.html"]


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {
        option
        for action in parser._actions
        for option in action.option_strings
        if option not in ("-h", "--help")
    }


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_readme_documents_subcommand(name):
    assert f"scraper {name}" in README


@pytest.mark.parametrize(
    "option",
    sorted(
        option_strings(cli.build_parser()).union(
            *(option_strings(parser) for parser in subcommands().values())
        )
    ),
)
def test_readme_documents_option(option):
    assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", README), option


@pytest.mark.parametrize("code", list(ExitCode), ids=lambda code: code.name)
def test_readme_documents_exit_code(code):
    assert f"| {int(code)} | {code.name} |" in README


@pytest.fixture
def synced(workdir, serve_page, scraper):
    """A store with version 1 (three rows) and version 2 (four rows)."""
    url = serve_page("matrix-3rows-asc.html")
    write_config(workdir, url)
    assert scraper("sync").code == 0
    serve_page("matrix-4rows-asc.html")
    assert scraper("sync").code == 0
    return scraper


def test_version_option(scraper):
    with pytest.raises(SystemExit) as exit_info:
        scraper("--version")
    assert exit_info.value.code == 0


def test_version_output(scraper_process):
    result = scraper_process("--version")
    assert result.code == 0
    assert result.out.strip() == f"scraper {__version__}"


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_subcommand_help(name, scraper_process):
    result = scraper_process(name, "--help")
    assert result.code == 0
    assert f"usage: scraper {name}" in result.out


def test_no_subcommand_is_usage_error(scraper_process):
    result = scraper_process()
    assert result.code == 2
    assert "usage:" in result.err


def test_unknown_option_is_usage_error(scraper_process):
    result = scraper_process("sync", "--no-such-option")
    assert result.code == 2


def test_show_yaml(synced):
    result = synced("show")
    data = yaml.safe_load(result.out)
    assert result.code == 0
    assert data["version"] == 2
    assert data["rows"] == ROWS_4


def test_show_json_given_version(synced):
    result = synced("show", "--version", "1", "--format", "json")
    data = json.loads(result.out)
    assert data["version"] == 1
    assert data["rows"] == ROWS_3


def test_show_table(synced):
    lines = synced("show", "--format", "table").out.splitlines()
    assert lines[1].split() == [
        "kubernetes_version", "cni_version", "containerd_version", "crictl_version"
    ]
    assert lines[3].split() == ["1.27.13", "1.2.0", "1.7.13", "1.26.0"]
    assert lines[-1].split() == ["1.30.4", "1.3.0", "1.7.13", "1.28.0"]


def test_show_missing_version(synced):
    result = synced("show", "--version", "9")
    assert result.code == 2
    assert "version 9 does not exist" in result.err
    assert "1 to 2" in result.err


def test_diff_text(synced):
    result = synced("diff")
    assert result.out.splitlines() == [
        "capi-image-builder: version 1 -> 2: 1 added, 0 removed, 0 changed",
        "+ 1.30.4  dependencies.cni_version=1.3.0 "
        "dependencies.containerd_version=1.7.13 dependencies.crictl_version=1.28.0",
    ]


def test_diff_reverse_json(synced):
    data = json.loads(synced("diff", "2", "1", "--format", "json").out)
    assert data == {"added": [], "removed": [ROWS_4[3]], "changed": []}


def test_diff_from_empty_store(synced):
    data = yaml.safe_load(synced("diff", "0", "1", "--format", "yaml").out)
    assert data == {"added": ROWS_3, "removed": [], "changed": []}


def test_history_json(synced):
    data = json.loads(synced("history", "--format", "json").out)
    versions = data["versions"]
    assert [entry["version"] for entry in versions] == [1, 2]
    assert [entry["added"] for entry in versions] == [3, 1]
    assert [entry["rows"] for entry in versions] == [3, 4]


def test_history_text(synced):
    lines = synced("history").out.splitlines()
    assert len(lines) == 3
    assert lines[2].split()[0] == "2"


def test_quiet_hides_unchanged(synced):
    result = synced("-q", "sync")
    assert result.code == 0
    assert result.out == ""
    assert result.err == ""


def test_quiet_after_subcommand(synced):
    assert synced("sync", "-q").out == ""


def test_verbose_logs_to_stderr(synced):
    result = synced("sync", "-v")
    assert result.out == "capi-image-builder: unchanged, version 2\n"
    assert "parsed 4 rows" in result.err


def test_unknown_source(synced):
    result = synced("sync", "--source", "nope")
    assert result.code == 2
    assert "unknown source 'nope'" in result.err
    assert "capi-image-builder" in result.err


def test_several_sources_need_choice(workdir, serve_page, scraper):
    url = serve_page("matrix-4rows-asc.html")
    second = (
        "  - name: second\n"
        f"    url: {url}\n"
        "    key: kubernetes_version\n"
        "    columns:\n"
        "      - {header: Kubernetes Version, field: kubernetes_version, parse: version}\n"
        "      - {header: Dependencies Version, field: dependencies, parse: key_value}\n"
    )
    write_config(workdir, url, extra_source=second)
    assert scraper("sync").out.splitlines() == [
        "capi-image-builder: changed, version 1 (4 added, 0 removed, 0 changed)",
        "second: changed, version 1 (4 added, 0 removed, 0 changed)",
    ]
    show = scraper("show")
    assert show.code == 2
    assert "--source" in show.err
    url_override = scraper("sync", "--url", url)
    assert url_override.code == 2


def test_worst_exit_code_wins(workdir, serve_page, scraper):
    url = serve_page("matrix-4rows-asc.html")
    broken = serve_page("cases/layout-changed.html", path="/broken/")
    second = (
        "  - name: broken\n"
        f"    url: {broken}\n"
        "    key: kubernetes_version\n"
        "    columns:\n"
        "      - {header: Kubernetes Version, field: kubernetes_version, parse: version}\n"
        "      - {header: Dependencies Version, field: dependencies, parse: key_value}\n"
    )
    write_config(workdir, url, extra_source=second)
    result = scraper("sync", "--exit-code")
    assert result.code == 4
    assert result.out.splitlines()[0].startswith("capi-image-builder: changed, version 1")
    assert result.out.splitlines()[1].startswith("broken: error: locate table:")


def test_traceback_option(workdir, serve_page, scraper):
    write_config(workdir, serve_page("cases/layout-changed.html"))
    result = scraper("--traceback", "sync")
    assert result.code == 4
    assert "Traceback (most recent call last)" in result.err


def test_internal_error_exit_code(workdir, serve_page, scraper, monkeypatch):
    write_config(workdir, serve_page("matrix-4rows-asc.html"))

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("scraper.sync.parse_page", broken)
    result = scraper("sync")
    assert result.code == 70
    assert "internal error: RuntimeError: boom" in result.err


def test_missing_config(scraper):
    result = scraper("sync")
    assert result.code == 2
    assert "config.yaml" in result.err
    assert "--config" in result.err


def test_config_option_after_subcommand(workdir, serve_page, scraper):
    folder = workdir / "elsewhere"
    folder.mkdir()
    write_config(folder, serve_page("matrix-4rows-asc.html"))
    result = scraper("sync", "--config", str(folder / "config.yaml"))
    assert result.code == 0
    assert (folder / "snapshots" / "capi-image-builder" / "latest.yaml").exists()


def test_offline_readme_run(workdir, scraper_process):
    """The README's offline example on the bundled captures prints what it shows."""
    (workdir / "config.yaml").write_bytes((ROOT / "config.yaml").read_bytes())
    (workdir / "fixtures").symlink_to(FIXTURES)
    block = README.split("```console\n", 1)[1].split("```", 1)[0]
    commands = re.split(r"^\$ \.venv/bin/scraper ", block, flags=re.MULTILINE)[1:]
    assert len(commands) == 4
    for command in commands:
        line, _, expected = command.partition("\n")
        result = scraper_process(*shlex.split(line))
        assert result.code == 0, result.err
        assert result.out == expected, line


@pytest.mark.parametrize("name", sorted(EXPECTED["captures"]))
def test_capture_parses_exactly(name, workdir, serve_page, scraper):
    """Every real capture gives exactly the rows written down for it."""
    write_config(workdir, serve_page(name))
    assert scraper("sync").code == 0
    assert json.loads(scraper("show", "--format", "json").out)["rows"] == EXPECTED["captures"][name]


@pytest.mark.parametrize(
    ("argv", "command", "extra"),
    [
        (["diff", "1", "2", "3"], "diff", "3"),
        (["sync", "--bogus"], "sync", "--bogus"),
        (["--bogus", "show"], "show", "--bogus"),
    ],
)
def test_extra_argument_shows_command_usage(argv, command, extra, capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: scraper {command} ")
    assert f"scraper {command}: error: unrecognized arguments: {extra}" in err


def test_relative_url_stored_absolute(workdir, scraper):
    # The URL is stored with each version, and a relative path would mean nothing
    # when the store is read from another folder.
    write_config(workdir, "https://127.0.0.1/not-used/")
    (workdir / "pages").mkdir()
    (workdir / "pages" / "matrix.html").write_bytes(
        (FIXTURES / "matrix-4rows-asc.html").read_bytes()
    )
    result = scraper("sync", "--url", "pages/matrix.html")
    assert result.code == 0, result.err
    shown = json.loads(scraper("show", "--format", "json").out)
    assert shown["url"] == str((workdir / "pages" / "matrix.html").resolve())
