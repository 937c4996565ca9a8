"""Tests of the published JSON Schemas (scraper/schemas/): `scraper schema`, their
agreement with the store's own validation and with `scraper diff --format json`, the
autouse check in conftest.py, the installed package data, and how every read command
treats a store written by a newer release."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys

import pytest
import yaml
from jsonschema import Draft202012Validator

from scraper import yamlio
from scraper.errors import StoreError
from scraper.store import SCHEMA_VERSION, SNAPSHOT_KEYS, checksum, validate_snapshot
from tests.conftest import (
    FIXTURES,
    ROOT,
    SnapshotSchemaCheck,
    snapshot_schema_validator,
    store_files,
    write_config,
)

SCHEMAS = ROOT / "scraper" / "schemas"
SOURCE = "capi-image-builder"
EXPECTED = yaml.safe_load((FIXTURES / "expected-rows.yaml").read_text(encoding="utf-8"))
ROWS_4 = EXPECTED["captures"]["matrix-4rows-asc.html"]


def load_schema(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))


def source_folder(workdir):
    return workdir / "snapshots" / SOURCE


def load_version(workdir, number: int) -> dict:
    path = source_folder(workdir) / "versions" / f"{number:06d}.yaml"
    return yamlio.load(path.read_text(encoding="utf-8"))


@pytest.fixture
def synced(workdir, serve_page, scraper):
    """A store with version 1 (three rows) and version 2 (four rows, one added)."""
    write_config(workdir, serve_page("matrix-3rows-asc.html"))
    assert scraper("sync").code == 0
    serve_page("matrix-4rows-asc.html")
    assert scraper("sync").code == 0
    return scraper


# `scraper schema`


def test_schema_command_default_snapshot(scraper):
    result = scraper("schema")
    assert result.code == 0, result.err
    assert result.out == (SCHEMAS / "snapshot.schema.json").read_text(encoding="utf-8")
    assert json.loads(result.out)["$id"] == "snapshot.schema.json"


def test_schema_command_diff(scraper):
    result = scraper("schema", "diff")
    assert result.code == 0, result.err
    assert result.out == (SCHEMAS / "diff.schema.json").read_text(encoding="utf-8")


def test_schema_command_unknown_name(scraper_process):
    result = scraper_process("schema", "state")
    assert result.code == 2
    assert "invalid choice: 'state'" in result.err


@pytest.mark.parametrize("name", ["snapshot", "diff"])
def test_schema_is_valid_2020_12(name):
    schema = load_schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_schema_lists_store_keys():
    schema = load_schema("snapshot")
    assert schema["required"] == list(SNAPSHOT_KEYS)
    assert list(schema["properties"]) == list(SNAPSHOT_KEYS)
    assert schema["additionalProperties"] is False


def test_schema_version_matches_store():
    assert (
        load_schema("snapshot")["properties"]["schema_version"]["const"]
        == SCHEMA_VERSION
    )


# Agreement with what scraper writes and prints


def test_synced_files_match_schema(synced, workdir):
    validator = snapshot_schema_validator()
    folder = source_folder(workdir)
    for path in (
        folder / "versions" / "000001.yaml",
        folder / "versions" / "000002.yaml",
    ):
        errors = list(
            validator.iter_errors(yamlio.load(path.read_text(encoding="utf-8")))
        )
        assert errors == [], path
    latest = yamlio.load((folder / "latest.yaml").read_text(encoding="utf-8"))
    assert list(validator.iter_errors(latest)) == []


def test_changed_row_diff_matches_schema(workdir, serve_page, scraper):
    page = (FIXTURES / "matrix-4rows-asc.html").read_text(encoding="utf-8")
    write_config(workdir, serve_page("matrix-4rows-asc.html"))
    assert scraper("sync").code == 0
    last_row_end = "<code>crictl_version</code> = 1.28.0</td></tr></tbody>"
    bumped = page.replace(f"1.7.13 <br> {last_row_end}", f"1.7.16 <br> {last_row_end}")
    assert bumped != page
    serve_page(bumped.encode("utf-8"))
    assert scraper("sync").code == 0
    document = load_version(workdir, 2)
    assert document["diff"]["changed"] == [
        {
            "key": "1.30.4",
            "fields": {
                "dependencies.containerd_version": {"old": "1.7.13", "new": "1.7.16"}
            },
        }
    ]
    assert list(snapshot_schema_validator().iter_errors(document)) == []
    printed = json.loads(scraper("diff", "--format", "json").out)
    assert list(diff_validator().iter_errors(printed)) == []
    assert printed == {
        key: document["diff"][key] for key in ("added", "removed", "changed")
    }


def diff_validator() -> Draft202012Validator:
    return Draft202012Validator(load_schema("diff"))


@pytest.mark.parametrize(
    "arguments",
    [[], ["0", "1"], ["2", "1"], ["1", "2"]],
    ids=["default", "from-0", "reverse", "forward"],
)
def test_printed_diff_matches_schema(synced, arguments):
    result = synced("diff", *arguments, "--format", "json")
    assert result.code == 0, result.err
    assert list(diff_validator().iter_errors(json.loads(result.out))) == []


def test_snapshot_diff_is_not_printed_diff(synced, workdir):
    """The stored diff has previous_version, which the printed diff does not have."""
    stored = load_version(workdir, 2)["diff"]
    assert stored["previous_version"] == 1
    errors = list(diff_validator().iter_errors(stored))
    assert [error.validator for error in errors] == ["additionalProperties"]


# Broken snapshots: the schema and the store's validator both reject each


def drop_key(document):
    del document["row_count"]


def add_key(document):
    document["comment"] = "edited by hand"


def newer_schema(document):
    document["schema_version"] = 2


def version_as_text(document):
    document["version"] = "2"


def no_rows(document):
    document["rows"] = []
    document["row_count"] = 0


def float_key(document):
    document["rows"][0]["kubernetes_version"] = 1.3


def null_pin(document):
    document["rows"][0]["dependencies"]["cni_version"] = None


def list_value(document):
    document["rows"][0]["dependencies"] = ["1.2.0"]


def empty_row(document):
    document["diff"]["added"] = [{}]


def status_as_text(document):
    document["http"]["status"] = "200"


def http_extra_key(document):
    document["http"]["age"] = "12"


def change_without_fields(document):
    document["diff"]["changed"] = [{"key": "1.30.4"}]


def change_without_new(document):
    document["diff"]["changed"] = [
        {"key": "1.30.4", "fields": {"dependencies.cni_version": {"old": "1.3.0"}}}
    ]


def diff_extra_key(document):
    document["diff"]["unchanged"] = []


def time_as_number(document):
    document["fetched_at"] = 1764813603


BREAKAGES = [
    drop_key,
    add_key,
    newer_schema,
    version_as_text,
    no_rows,
    float_key,
    null_pin,
    list_value,
    empty_row,
    status_as_text,
    http_extra_key,
    change_without_fields,
    change_without_new,
    diff_extra_key,
    time_as_number,
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda breakage: breakage.__name__)
def test_broken_snapshot_fails_validation(synced, workdir, breakage):
    document = copy.deepcopy(load_version(workdir, 2))
    breakage(document)
    document["checksum"] = checksum(document)
    assert list(snapshot_schema_validator().iter_errors(document)) != []
    with pytest.raises(StoreError):
        validate_snapshot(document, SOURCE, 2, "(test)")


def test_wrong_checksum_fails_validation(synced, workdir):
    document = load_version(workdir, 2)
    document["checksum"] = "sha1:" + "0" * 40
    assert list(snapshot_schema_validator().iter_errors(document)) != []
    with pytest.raises(StoreError):
        validate_snapshot(document, SOURCE, 2, "(test)")


# The autouse check in conftest.py


def test_check_finds_synced_files(synced, workdir, snapshot_schema_check):
    validated = snapshot_schema_check.run()
    folder = source_folder(workdir)
    assert validated == [
        folder / "latest.yaml",
        folder / "versions" / "000001.yaml",
        folder / "versions" / "000002.yaml",
    ]
    assert snapshot_schema_check.skipped == []


def test_check_skips_damaged_file(synced, workdir, snapshot_schema_check):
    path = source_folder(workdir) / "versions" / "000001.yaml"
    path.write_text(path.read_text(encoding="utf-8")[:200], encoding="utf-8")
    validated = snapshot_schema_check.run()
    assert path not in validated
    assert len(validated) == 2
    assert snapshot_schema_check.skipped == [path]


def test_check_reports_schema_error(synced, workdir):
    # A schema that rejects version 2 simulates a schema error in real files.
    rejecting = Draft202012Validator({"properties": {"version": {"maximum": 1}}})
    check = SnapshotSchemaCheck(workdir, rejecting)
    with pytest.raises(pytest.fail.Exception) as failure:
        check.run()
    message = str(failure.value)
    folder = source_folder(workdir)
    assert (
        f"{folder}/versions/000002.yaml: $.version: 2 is greater than the maximum of 1"
        in message
    )
    assert (
        f"{folder}/latest.yaml: $.version: 2 is greater than the maximum of 1"
        in message
    )
    assert "000001.yaml" not in message


def test_check_without_tmp_path(snapshot_schema_check):
    assert snapshot_schema_check.folder is None
    assert snapshot_schema_check.run() == []


# A store written by a newer release


def bump_schema_version(workdir) -> None:
    """Rewrite every snapshot as a newer release would, with schema_version 2."""
    folder = source_folder(workdir)
    for path in [*sorted((folder / "versions").iterdir()), folder / "latest.yaml"]:
        document = yamlio.load(path.read_text(encoding="utf-8"))
        document["schema_version"] = SCHEMA_VERSION + 1
        document["checksum"] = checksum(document)
        path.write_text(yamlio.dump(document), encoding="utf-8")


@pytest.mark.parametrize(
    "arguments",
    [
        ["show"],
        ["show", "--version", "1", "--format", "json"],
        ["diff"],
        ["diff", "0", "1", "--format", "json"],
        ["history"],
        ["history", "--format", "json"],
        ["export", "--format", "json"],
        ["export", "--format", "csv"],
        ["export", "--format", "yaml"],
        ["export", "--format", "packer", "--k8s", "1.28.9"],
        ["export", "--format", "imageconfig", "--k8s", "1.28"],
        ["sync"],
    ],
    ids=" ".join,
)
def test_newer_store_rejected(synced, workdir, arguments):
    bump_schema_version(workdir)
    before = store_files(workdir / "snapshots")
    result = synced(*arguments)
    assert result.code == 5
    if arguments == ["sync"]:
        assert result.out.startswith(f"{SOURCE}: error: store:")
    else:
        assert result.out == ""
    assert (
        "schema_version 2 was written by a newer scraper (this one reads 1)"
        in result.err
    )
    assert "upgrade scraper" in result.err
    assert store_files(workdir / "snapshots") == before


# Package data


def test_build_includes_schemas(tmp_path):
    """Run setuptools' build_py on a copy of the project and look for the schemas.

    build_py copies what a wheel would contain for the package, package data included.
    """
    pytest.importorskip("setuptools")
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(
        ROOT / "scraper",
        project / "scraper",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    build = tmp_path / "build"
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from setuptools import setup; setup()",
            "--quiet",
            "build_py",
            "--build-lib",
            str(build),
        ],
        cwd=project,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    for name in ("snapshot.schema.json", "diff.schema.json"):
        built = build / "scraper" / "schemas" / name
        assert built.read_bytes() == (SCHEMAS / name).read_bytes()
