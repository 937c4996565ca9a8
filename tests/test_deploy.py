"""The deployment files under deploy/: syntax, schemas and the contract with the CLI.

Validators that need an optional package or tool (kubernetes-validate,
check-jsonschema, systemd-analyze) skip with the reason when it is missing. Both
schema validators run with every socket connection blocked, so a pass shows that
they worked from their bundled schemas. The workflow's shell steps run for real
against a local HTTP server and a local bare git repository.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from scraper import cli
from scraper.config import load_config
from scraper.errors import ConfigError, ExitCode
from scraper.notify import check_notify_settings
from scraper.schedule import STOP_WAIT
from tests.conftest import ROOT, fixture_bytes, store_files, write_config
from tests.httpserver import Reply

DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
WORKFLOW = DEPLOY / "github" / "scraper-nightly.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
CONTAINER_CONFIG = DEPLOY / "config.container.yaml"
SYSTEMD_CONFIG = SYSTEMD / "config.yaml"

EXPECTED_FILES = [
    "Dockerfile",
    "Dockerfile.dockerignore",
    "config.container.yaml",
    "README.md",
    "kubernetes/cronjob.yaml",
    "kubernetes/configmap.yaml",
    "kubernetes/pvc.yaml",
    "kubernetes/examples/notify-secret.yaml",
    "systemd/scraper.service",
    "systemd/scraper.timer",
    "systemd/scraper-schedule.service",
    "systemd/config.yaml",
    "github/scraper-nightly.yml",
]
YAML_FILES = sorted(
    path for path in DEPLOY.rglob("*") if path.suffix in (".yaml", ".yml")
)
KUBERNETES_FILES = sorted(KUBERNETES.rglob("*.yaml"))
UNIT_FILES = sorted(SYSTEMD.glob("scraper*.*"))
# The oldest Kubernetes release the manifests support (timeZone, podFailurePolicy).
MIN_KUBERNETES = "1.29.0"


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def load_documents(path: Path) -> list:
    with path.open(encoding="utf-8") as stream:
        return [
            document for document in yaml.safe_load_all(stream) if document is not None
        ]


def kubernetes_objects() -> dict[str, dict]:
    """Return every Kubernetes object under deploy/kubernetes/, keyed by "Kind/name"."""
    objects = {}
    for path in KUBERNETES_FILES:
        for document in load_documents(path):
            objects[f"{document['kind']}/{document['metadata']['name']}"] = document
    return objects


def cronjob() -> dict:
    return kubernetes_objects()["CronJob/scraper"]


def pod_spec() -> dict:
    return cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def container() -> dict:
    containers = pod_spec()["containers"]
    assert len(containers) == 1
    return containers[0]


def load_workflow() -> dict:
    document = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    # PyYAML follows YAML 1.1, where a bare `on` key is the boolean True.
    if True in document:
        document["on"] = document.pop(True)
    return document


def workflow_step(name: str) -> dict:
    steps = load_workflow()["jobs"]["sync"]["steps"]
    return next(step for step in steps if step.get("name") == name)


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Parse a systemd unit file into {section: [(key, value), ...]}, with repeats."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def unit_value(unit: dict, section: str, key: str) -> str:
    values = [value for name, value in unit[section] if name == key]
    assert len(values) == 1, f"{section}.{key}: expected one value, found {values}"
    return values[0]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """Return the Dockerfile's (INSTRUCTION, arguments) pairs, continuations joined."""
    instructions = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        instruction, _, arguments = text.partition(" ")
        instructions.append((instruction.upper(), arguments.strip()))
    return instructions


def dockerfile_values(instruction: str) -> list[str]:
    return [
        arguments
        for name, arguments in dockerfile_instructions()
        if name == instruction
    ]


def parse_cli(argv: list[str]):
    """Parse ``argv`` (without the program name) with the real CLI parser."""
    return cli.build_parser().parse_args(argv)


@pytest.fixture
def no_network(monkeypatch):
    """Make every socket connection and name lookup in this process fail."""

    def block(*args, **kwargs):
        raise OSError("network access is blocked in this test")

    monkeypatch.setattr(socket.socket, "connect", block)
    monkeypatch.setattr(socket.socket, "connect_ex", block)
    monkeypatch.setattr(socket, "create_connection", block)
    monkeypatch.setattr(socket, "getaddrinfo", block)


# Files and YAML syntax


@pytest.mark.parametrize("name", EXPECTED_FILES)
def test_deploy_file_exists(name):
    assert (DEPLOY / name).is_file()


@pytest.mark.parametrize("path", YAML_FILES, ids=relative)
def test_yaml_file_parses(path):
    assert load_documents(path)


# Configuration files


@pytest.mark.parametrize("path", [CONTAINER_CONFIG, SYSTEMD_CONFIG], ids=relative)
def test_config_has_repository_sources(path):
    # Only the notification settings may differ from the repository's config.yaml.
    deployed = [replace(source, notify=None) for source in load_config(path).sources]
    repository = [
        replace(source, notify=None)
        for source in load_config(ROOT / "config.yaml").sources
    ]
    assert deployed == repository


def test_container_config_paths():
    config = load_config(CONTAINER_CONFIG)
    assert config.snapshots_dir == Path("/data/snapshots")
    assert config.state_dir == Path("/data/state")


def test_systemd_config_paths():
    config = load_config(SYSTEMD_CONFIG)
    writable = Path(
        unit_value(parse_unit(SYSTEMD / "scraper.service"), "Service", "ReadWritePaths")
    )
    assert config.snapshots_dir.is_relative_to(writable)
    assert config.state_dir.is_relative_to(writable)


@pytest.mark.parametrize("path", [CONTAINER_CONFIG, SYSTEMD_CONFIG], ids=relative)
def test_config_notify_url_from_environment(path):
    for source in load_config(path).sources:
        assert source.notify.urls == ("${SCRAPER_NOTIFY_URL}",)


@pytest.mark.parametrize("path", [CONTAINER_CONFIG, SYSTEMD_CONFIG], ids=relative)
def test_config_unset_notify_variable(path, monkeypatch):
    monkeypatch.delenv("SCRAPER_NOTIFY_URL", raising=False)
    with pytest.raises(
        ConfigError, match="environment variable SCRAPER_NOTIFY_URL is not set"
    ):
        check_notify_settings(load_config(path))


@pytest.mark.parametrize("path", [CONTAINER_CONFIG, SYSTEMD_CONFIG], ids=relative)
def test_config_set_notify_variable(path, monkeypatch):
    # Apprise only parses the URL here, so nothing is sent.
    monkeypatch.setenv("SCRAPER_NOTIFY_URL", "json://127.0.0.1/hooks/scraper")
    check_notify_settings(load_config(path))


# Dockerfile


def test_dockerfile_base_image():
    assert dockerfile_values("FROM") == ["python:3.12-slim"]


def test_dockerfile_user_not_root():
    users = dockerfile_values("USER")
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")


def test_dockerfile_data_volume():
    volumes = [json.loads(value) for value in dockerfile_values("VOLUME")]
    assert ["/data"] in volumes


def test_dockerfile_entrypoint_and_cmd():
    entrypoint = json.loads(dockerfile_values("ENTRYPOINT")[-1])
    command = json.loads(dockerfile_values("CMD")[-1])
    assert entrypoint == ["scraper", "--config", "/etc/scraper/config.yaml"]
    assert command == ["sync"]
    arguments = parse_cli(entrypoint[1:] + command)
    assert arguments.command == "sync"


def test_dockerfile_copies_container_config():
    assert "deploy/config.container.yaml /etc/scraper/config.yaml" in dockerfile_values(
        "COPY"
    )


def test_dockerfile_copy_sources_exist():
    for arguments in dockerfile_values("COPY"):
        *sources, _destination = arguments.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY source {source} is missing"


def test_dockerignore_keeps_copy_sources():
    ignore_file = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    included = {
        line[1:].rstrip("/")
        for line in ignore_file.splitlines()
        if line.startswith("!")
    }
    for arguments in dockerfile_values("COPY"):
        *sources, _destination = arguments.split()
        for source in sources:
            assert source.rstrip("/") in included, (
                f"{source} is excluded from the build context"
            )


def test_dockerfile_installs_only_project():
    # Each `pip install` argument must be the folder that pyproject.toml was copied
    # to, so every installed package comes from pyproject.toml's dependencies.
    project_folders = {
        arguments.split()[-1].rstrip("/")
        for arguments in dockerfile_values("COPY")
        if "pyproject.toml" in arguments.split()[:-1]
    }
    installs = []
    for command in dockerfile_values("RUN"):
        for part in command.split("&&"):
            words = shlex.split(part)
            is_pip = any(Path(word).name in ("pip", "pip3") for word in words)
            if not is_pip or "install" not in words:
                continue
            after_install = words[words.index("install") + 1 :]
            installs.append(
                [word for word in after_install if not word.startswith("-")]
            )
    assert installs
    for targets in installs:
        assert targets
        assert {target.rstrip("/") for target in targets} <= project_folders


def test_dockerfile_ids_match_cronjob():
    run = " ".join(dockerfile_values("RUN"))
    security = pod_spec()["securityContext"]
    assert f"--uid {security['runAsUser']}" in run
    assert f"--gid {security['runAsGroup']}" in run
    assert security["fsGroup"] == security["runAsGroup"]


# Kubernetes


@pytest.mark.parametrize("version", [MIN_KUBERNETES, "latest"], ids=["min", "latest"])
@pytest.mark.parametrize("path", KUBERNETES_FILES, ids=relative)
def test_manifest_matches_schema(path, version, no_network):
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate",
        reason="kubernetes-validate is not installed (pip install kubernetes-validate)",
    )
    from kubernetes_validate import utils

    if version == "latest":
        version = utils.latest_version()
    documents = load_documents(path)
    assert documents
    for document in documents:
        # strict=True also rejects fields the schema does not define (typos).
        # A kind without a bundled schema raises SchemaNotFoundError and fails.
        kubernetes_validate.validate(document, version, strict=True)


def test_cronjob_schedule():
    spec = cronjob()["spec"]
    assert spec["schedule"] == "0 2 * * *"
    assert spec["timeZone"] == "UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0


def test_cronjob_history_limits():
    spec = cronjob()["spec"]
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= 1


def test_cronjob_job_limits():
    job = cronjob()["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] >= 0
    assert job["activeDeadlineSeconds"] > 0


def test_cronjob_fails_fast_on_config_and_table():
    rules = cronjob()["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"]
    fail_job = [rule for rule in rules if rule["action"] == "FailJob"]
    assert len(fail_job) == 1
    exit_codes = fail_job[0]["onExitCodes"]
    assert exit_codes["containerName"] == container()["name"]
    assert exit_codes["operator"] == "In"
    assert exit_codes["values"] == [ExitCode.USAGE, ExitCode.PARSE]
    assert pod_spec()["restartPolicy"] == "Never"


def test_cronjob_runs_sync():
    argv = container()["command"] + container()["args"]
    assert argv[0] == "scraper"
    arguments = parse_cli(argv[1:])
    assert arguments.command == "sync"
    assert arguments.config == "/etc/scraper/config.yaml"
    assert arguments.exit_code is False


def test_cronjob_security_context():
    assert pod_spec()["securityContext"]["runAsNonRoot"] is True
    assert pod_spec()["securityContext"]["runAsUser"] != 0
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]


def test_cronjob_resources():
    resources = container()["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert "memory" in resources["limits"]


def test_cronjob_volumes():
    volumes = {volume["name"]: volume for volume in pod_spec()["volumes"]}
    mounts = {
        mount["mountPath"]: mount["name"] for mount in container()["volumeMounts"]
    }
    claims = [
        key for key in kubernetes_objects() if key.startswith("PersistentVolumeClaim/")
    ]
    data = volumes[mounts["/data"]]
    assert claims == [
        f"PersistentVolumeClaim/{data['persistentVolumeClaim']['claimName']}"
    ]
    assert "emptyDir" in volumes[mounts["/tmp"]]
    config = volumes[mounts["/etc/scraper"]]
    assert f"ConfigMap/{config['configMap']['name']}" in kubernetes_objects()


def test_cronjob_notify_secret_env():
    variables = {variable["name"]: variable for variable in container()["env"]}
    reference = variables["SCRAPER_NOTIFY_URL"]["valueFrom"]["secretKeyRef"]
    assert reference["optional"] is True
    secret = kubernetes_objects()[f"Secret/{reference['name']}"]
    assert reference["key"] in secret["stringData"]


def test_configmap_matches_container_config():
    configmap = kubernetes_objects()["ConfigMap/scraper-config"]
    assert configmap["data"]["config.yaml"] == CONTAINER_CONFIG.read_text(
        encoding="utf-8"
    )


def test_secret_example_outside_applied_folder():
    # `kubectl apply -f deploy/kubernetes/` reads only that folder, not examples/.
    secrets = [
        path for path in KUBERNETES.glob("*.yaml") if "kind: Secret" in path.read_text()
    ]
    assert secrets == []


# systemd


@pytest.fixture
def systemd_root(tmp_path) -> Path:
    """A file system root for ``systemd-analyze verify --root``.

    It contains the system's own units (verify needs sysinit.target and the other
    standard units), deploy/systemd's units in /etc/systemd/system, and a copy of
    the installed scraper console script at the units' ExecStart path, so verify
    checks the units unchanged.
    """
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    system_units = Path("/usr/lib/systemd/system")
    if not system_units.is_dir():
        pytest.skip(
            f"{system_units} is missing, so systemd-analyze verify cannot load units"
        )
    root = tmp_path / "root"
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    unit_folder = root / "etc/systemd/system"
    unit_folder.mkdir(parents=True)
    for path in UNIT_FILES:
        shutil.copy(path, unit_folder / path.name)
    executable = root / "opt/scraper/.venv/bin/scraper"
    executable.parent.mkdir(parents=True)
    shutil.copy(console_script(), executable)
    return root


def console_script() -> Path:
    path = Path(sys.executable).parent / "scraper"
    if not path.is_file():
        pytest.skip(f"the scraper console script is not installed at {path}")
    return path


def test_units_pass_systemd_verify(systemd_root):
    names = [path.name for path in UNIT_FILES]
    completed = subprocess.run(
        ["systemd-analyze", "verify", f"--root={systemd_root}", "--man=no", *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # verify exits 0 after warnings such as an unknown key, so stderr must be empty.
    assert completed.stderr == ""
    assert completed.returncode == 0


def test_units_check_missing_executable(systemd_root):
    # The check above is only meaningful if verify looks inside --root.
    (systemd_root / "opt/scraper/.venv/bin/scraper").unlink()
    completed = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            f"--root={systemd_root}",
            "--man=no",
            "scraper.service",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "/opt/scraper/.venv/bin/scraper" in completed.stderr
    assert completed.returncode != 0


def test_service_runs_sync():
    unit = parse_unit(SYSTEMD / "scraper.service")
    assert unit_value(unit, "Service", "Type") == "oneshot"
    argv = shlex.split(unit_value(unit, "Service", "ExecStart"))
    assert argv[0] == "/opt/scraper/.venv/bin/scraper"
    arguments = parse_cli(argv[1:])
    assert arguments.command == "sync"
    assert arguments.config == "/etc/scraper/config.yaml"
    # Without --exit-code a change exits with 0, so no SuccessExitStatus= is needed.
    assert arguments.exit_code is False


@pytest.mark.parametrize("name", ["scraper.service", "scraper-schedule.service"])
def test_service_user_and_environment(name):
    unit = parse_unit(SYSTEMD / name)
    assert unit_value(unit, "Service", "User") not in ("root", "0")
    assert unit_value(unit, "Service", "EnvironmentFile") == "-/etc/scraper/env"


@pytest.mark.parametrize("name", ["scraper.service", "scraper-schedule.service"])
@pytest.mark.parametrize(
    "key, value",
    [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/scraper"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("CapabilityBoundingSet", ""),
    ],
)
def test_service_hardening(name, key, value):
    assert unit_value(parse_unit(SYSTEMD / name), "Service", key) == value


def test_timer_schedule():
    unit = parse_unit(SYSTEMD / "scraper.timer")
    assert unit_value(unit, "Timer", "OnCalendar") == "*-*-* 02:00:00 UTC"
    assert unit_value(unit, "Timer", "Persistent") == "true"
    assert unit_value(unit, "Timer", "RandomizedDelaySec")
    assert unit_value(unit, "Install", "WantedBy") == "timers.target"


def test_schedule_service_runs_daemon():
    unit = parse_unit(SYSTEMD / "scraper-schedule.service")
    argv = shlex.split(unit_value(unit, "Service", "ExecStart"))
    arguments = parse_cli(argv[1:])
    assert arguments.command == "schedule"
    assert arguments.config == "/etc/scraper/config.yaml"
    assert unit_value(unit, "Service", "Restart") == "on-failure"
    assert unit_value(unit, "Service", "KillSignal") == "SIGTERM"
    assert unit_value(unit, "Service", "RestartPreventExitStatus") == str(
        int(ExitCode.USAGE)
    )


def test_schedule_service_stop_timeout():
    # The daemon waits up to STOP_WAIT seconds for a running sync after SIGTERM.
    unit = parse_unit(SYSTEMD / "scraper-schedule.service")
    assert int(unit_value(unit, "Service", "TimeoutStopSec")) > STOP_WAIT


# GitHub Actions workflow


def test_workflow_matches_schema(no_network):
    pytest.importorskip(
        "check_jsonschema",
        reason="check-jsonschema is not installed (pip install check-jsonschema)",
    )
    from check_jsonschema.cli.main_command import main as check_jsonschema
    from click.testing import CliRunner

    result = CliRunner().invoke(
        check_jsonschema, ["--builtin-schema", "vendor.github-workflows", str(WORKFLOW)]
    )
    assert result.exit_code == 0, result.output


def test_workflow_triggers():
    triggers = load_workflow()["on"]
    assert triggers["schedule"] == [{"cron": "0 2 * * *"}]
    assert "workflow_dispatch" in triggers


def test_workflow_permissions():
    assert load_workflow()["permissions"] == {"contents": "write"}


def test_workflow_actions_pinned_by_major():
    steps = load_workflow()["jobs"]["sync"]["steps"]
    uses = [step["uses"] for step in steps if "uses" in step]
    assert uses
    for action in uses:
        ref = action.partition("@")[2]
        assert ref.startswith("v"), f"{action} is not pinned to a major version"
        assert ref[1:].isdigit(), f"{action} is not pinned to a major version"


def test_workflow_commit_step_runs_after_success():
    # A step without `if:` runs only when every step before it succeeded, so a
    # failed sync commits nothing.
    assert "if" not in workflow_step("Commit new snapshot versions")


# The workflow's shell steps, run by bash as GitHub runs them (bash -e), against a
# local HTTP server and a local bare repository as the remote.


# Keeps the machine's git configuration out of the repositories these tests make.
GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def run_step(
    name: str, folder: Path, script_folder: Path
) -> subprocess.CompletedProcess:
    """Run the `run:` script of workflow step ``name`` in ``folder``."""
    script = workflow_step(name)["run"]
    assert "${{" not in script, "expressions would need GitHub to expand them"
    script_path = script_folder / "step.sh"
    script_path.write_text(script, encoding="utf-8")
    env = {
        **os.environ,
        **GIT_ENV,
        "PATH": f"{console_script().parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-e", str(script_path)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def git(folder: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", *args],
        cwd=folder,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return completed.stdout


@pytest.fixture
def repository(tmp_path) -> Path:
    """A clone with the project's .gitignore that pushes to the bare "remote.git"."""
    git(tmp_path, "init", "--quiet", "--bare", "-b", "main", "remote.git")
    work = tmp_path / "work"
    git(tmp_path, "init", "--quiet", "-b", "main", "work")
    git(work, "remote", "add", "origin", str(tmp_path / "remote.git"))
    shutil.copy(ROOT / ".gitignore", work / ".gitignore")
    (work / "snapshots").mkdir()
    shutil.copy(ROOT / "snapshots" / "README.md", work / "snapshots" / "README.md")
    git(work, "add", ".")
    git(
        work,
        "-c",
        "user.name=test",
        "-c",
        "user.email=test@example.invalid",
        "commit",
        "--quiet",
        "-m",
        "Start",
    )
    git(work, "push", "--quiet", "-u", "origin", "main")
    return work


def remote_files(work: Path) -> list[str]:
    return git(
        work.parent / "remote.git", "ls-tree", "-r", "--name-only", "main"
    ).split()


def remote_subjects(work: Path) -> list[str]:
    return git(work.parent / "remote.git", "log", "--format=%s", "main").splitlines()


def test_workflow_commits_new_version(repository, server, tmp_path):
    page = "/matrix"
    server.route(page, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    write_config(repository, server.url(page))
    scripts = tmp_path

    sync = run_step("Sync", repository, scripts)
    assert sync.returncode == 0, sync.stderr
    commit = run_step("Commit new snapshot versions", repository, scripts)
    assert commit.returncode == 0, commit.stderr

    store = "snapshots/capi-image-builder"
    files = remote_files(repository)
    assert f"{store}/versions/000001.yaml" in files
    assert f"{store}/latest.yaml" in files
    assert f"{store}/state.yaml" in files
    assert f"{store}/.lock" not in files
    assert remote_subjects(repository)[0] == "Add snapshot versions from scraper sync"
    body = git(repository.parent / "remote.git", "log", "-1", "--format=%b", "main")
    assert body.split() == [f"{store}/versions/000001.yaml"]


def test_workflow_skips_state_only_change(repository, server, tmp_path):
    page = "/matrix"
    server.route(page, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    write_config(repository, server.url(page))
    scripts = tmp_path
    assert run_step("Sync", repository, scripts).returncode == 0
    assert run_step("Commit new snapshot versions", repository, scripts).returncode == 0
    subjects = remote_subjects(repository)

    # Same rows with a new ETag: no new version, but state.yaml changes.
    server.route(
        page,
        Reply.html(fixture_bytes("matrix-3rows-asc.html"), headers={"ETag": '"2"'}),
    )
    state = repository / "snapshots/capi-image-builder/state.yaml"
    state_before = state.read_bytes()
    assert run_step("Sync", repository, scripts).returncode == 0
    assert state.read_bytes() != state_before

    commit = run_step("Commit new snapshot versions", repository, scripts)
    assert commit.returncode == 0, commit.stderr
    assert "No new snapshot version." in commit.stdout
    assert remote_subjects(repository) == subjects


def test_workflow_commits_second_version(repository, server, tmp_path):
    page = "/matrix"
    server.route(page, Reply.html(fixture_bytes("matrix-3rows-asc.html")))
    write_config(repository, server.url(page))
    scripts = tmp_path
    assert run_step("Sync", repository, scripts).returncode == 0
    assert run_step("Commit new snapshot versions", repository, scripts).returncode == 0

    server.route(page, Reply.html(fixture_bytes("matrix-4rows-asc.html")))
    assert run_step("Sync", repository, scripts).returncode == 0
    commit = run_step("Commit new snapshot versions", repository, scripts)
    assert commit.returncode == 0, commit.stderr

    store = "snapshots/capi-image-builder"
    assert f"{store}/versions/000002.yaml" in remote_files(repository)
    assert len(remote_subjects(repository)) == 3
    body = git(repository.parent / "remote.git", "log", "-1", "--format=%b", "main")
    assert body.split() == [f"{store}/versions/000002.yaml"]


@pytest.mark.parametrize(
    "case, code, message",
    [
        ("config", ExitCode.USAGE, "configuration error"),
        ("fetch", ExitCode.FETCH, "fetch failed"),
        ("table", ExitCode.PARSE, "table missing or invalid"),
    ],
)
def test_workflow_sync_failure(case, code, message, workdir, server, tmp_path):
    page = "/matrix"
    if case == "fetch":
        server.route(page, Reply(status=500, body=b"server error"))
    else:
        server.route(page, Reply.html(fixture_bytes("cases/layout-changed.html")))
    write_config(workdir, server.url(page))
    if case == "config":
        config = workdir / "config.yaml"
        config.write_text(
            config.read_text(encoding="utf-8") + "unknown_key: 1\n", encoding="utf-8"
        )
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    before = store_files(workdir / "snapshots")

    sync = run_step("Sync", workdir, scripts)

    assert sync.returncode == code
    assert f"::error::scraper sync exited with {int(code)}: {message}" in sync.stdout
    assert store_files(workdir / "snapshots") == before


# The README's Deployment section


def test_readme_paths_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Deployment")
    text = readme[start:readme.index("\n## ", start + 1)]
    words = text.replace("`", " ").replace("(", " ").replace(")", " ").split()
    paths = {word.rstrip(".,:;") for word in words if word.startswith("deploy/")}
    assert paths
    for path in paths:
        assert (ROOT / path).exists(), (
            f"the README's Deployment section names {path}, which does not exist"
        )
