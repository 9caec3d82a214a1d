"""deploy/k8s/: every manifest validated against the Kubernetes API schemas (strict: an
unknown field fails), and the pieces refer to each other correctly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from server.cli import build_parser
from server.settings import _section_fields, variables

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.name, doc))
    return docs


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in _documents() if d["kind"] == kind}


def _pod_specs() -> dict[str, dict[str, Any]]:
    specs = {}
    for kind in ("Deployment", "Job"):
        for name, doc in _by_kind(kind).items():
            specs[name] = doc["spec"]["template"]["spec"]
    return specs


@pytest.mark.parametrize(
    "doc", [d for _, d in _documents()], ids=[f"{f}:{d['kind']}" for f, d in _documents()]
)
def test_manifest_is_valid_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    version = kubernetes_validate.latest_version()
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_the_schema_check_rejects_a_misspelt_field() -> None:
    deployment = dict(_by_kind("Deployment")["bustracker-api"])
    deployment["spec"] = {**deployment["spec"], "replicaz": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def test_everything_lives_in_the_namespace() -> None:
    assert "bustracker" in _by_kind("Namespace")
    for name, doc in _documents():
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "bustracker", name


def test_the_autoscaler_scales_the_api_on_cpu_requests() -> None:
    hpa = _by_kind("HorizontalPodAutoscaler")["bustracker-api"]["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "bustracker-api")
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    api = _pod_specs()["bustracker-api"]["containers"][0]
    # A CPU utilisation target means nothing without a CPU request to measure against.
    assert any(m["resource"]["name"] == "cpu" for m in hpa["metrics"])
    assert api["resources"]["requests"]["cpu"]


def test_the_service_and_ingress_reach_the_api_pods() -> None:
    service = _by_kind("Service")["bustracker-api"]["spec"]
    labels = _by_kind("Deployment")["bustracker-api"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    api = _pod_specs()["bustracker-api"]["containers"][0]
    assert service["ports"][0]["targetPort"] in {p["name"] for p in api["ports"]}
    backend = _by_kind("Ingress")["bustracker"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    assert backend["service"]["name"] == "bustracker-api"
    assert api["readinessProbe"]["httpGet"]["path"] == "/health"


def test_pods_run_unprivileged_with_secrets_only_as_files() -> None:
    secret_keys = set(_by_kind("Secret")["bustracker-secrets"]["stringData"])
    secret_vars = {f.metadata["env"] for _, f in _section_fields() if f.metadata.get("secret")}
    for name, pod in _pod_specs().items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        mounts = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"]}
        assert set(mounts.values()) == {"bustracker-secrets"}, name
        container = pod["containers"][0]
        (mount,) = container["volumeMounts"]
        for env in container.get("env", []):
            assert env["name"] not in secret_vars, f"{name}: {env['name']} in plain sight"
            if env["name"].endswith("_FILE"):
                assert env["name"].removesuffix("_FILE") in secret_vars, name
                directory, key = env["value"].rsplit("/", 1)
                assert directory == mount["mountPath"] and key in secret_keys, (name, env)


def test_config_and_env_name_only_settings_the_server_reads() -> None:
    known = set(variables())
    config = _by_kind("ConfigMap")["bustracker-config"]["data"]
    assert set(config) - known == set()
    plain = {
        env["name"]
        for pod in _pod_specs().values()
        for env in pod["containers"][0].get("env", [])
        if not env["name"].endswith("_FILE")
    }
    assert plain - known == set()


def test_containers_run_commands_the_cli_knows() -> None:
    parser = build_parser()
    unknown = set()
    for pod in _pod_specs().values():
        command = pod["containers"][0]["command"]
        assert command[0] == "bustracker"
        try:
            parser.parse_args(command[1:])
        except SystemExit:
            unknown.add(command[1])
    assert unknown == set()
