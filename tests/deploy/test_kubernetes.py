"""Kubernetes manifests and the Helm chart, validated against the Kubernetes schemas.

The plain sidecar manifests (deploy/kubernetes) and the chart rendered with several
value sets are validated with kubernetes-validate (schemas bundled in the package, so
nothing is downloaded) in strict mode, for the oldest Kubernetes with native sidecars
and the newest the package knows. The chart is linted and rendered by Helm's own Go
engine through helm-python-sdk, which needs no helm binary. Prometheus Operator
resources (PodMonitor, PrometheusRule) have no bundled schema: they are checked
against the Deployment they select and the rule file they carry. Every accepted
configuration must keep a warm-up reference where a rescheduled pod finds it again
(the Kafka store, or a claim), or use a reference profile; the others must not render.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.dashboards import ROOT
from tests.deploy.tools import require_module

kubernetes_validate = require_module("kubernetes_validate")
helm_python = require_module("helm_python")

K8S_DIR = ROOT / "deploy" / "kubernetes"
CHART = ROOT / "deploy" / "helm" / "driftd"
RULES = ROOT / "deploy" / "prometheus" / "rules" / "driftd.rules.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
KUBE_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
"""Native sidecars need 1.29+; the newest version the package bundles schemas for."""
OPERATOR_KINDS = {"PodMonitor", "PrometheusRule"}
RECOMMENDED_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
}
FREE_FORM = {"config", "podSecurityContext", "securityContext", "resources"}
"""values.yaml blocks passed through as a whole."""
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "pagerduty-no-operator": {
        "pagerduty": {"existingSecret": "driftd-pagerduty"},
        "podMonitor": {"enabled": False},
        "prometheusRule": {"enabled": False},
        "extraEnv": [{"name": "DRIFTD_WINDOWS__SIZE_EVENTS", "value": "10000"}],
        "config": {
            "model": "fraud",
            "kafka": {"bootstrap_servers": ["kafka-0.kafka:9092"], "topics": ["fraud"]},
            "alerts": {
                "sinks": [
                    {
                        "type": "pagerduty",
                        "name": "oncall",
                        "routing_key": {"env": "PD_ROUTING_KEY"},
                    }
                ],
                "routes": [{"sinks": ["oncall"]}],
            },
        },
    },
    "overrides": {
        "fullnameOverride": "drift",
        "replicaCount": 3,
        "image": {"repository": "registry.example.com/driftd", "tag": "1.2.3"},
        "serviceAccount": {"create": False, "name": "existing"},
        "metrics": {"port": 9200},
        "podLabels": {"team": "ml"},
        "podMonitor": {"labels": {"release": "kube-prometheus-stack"}},
        "extraVolumes": [{"name": "reference", "configMap": {"name": "fraud-reference"}}],
        "extraVolumeMounts": [{"name": "reference", "mountPath": "/etc/driftd-reference"}],
        "tolerations": [{"key": "ml", "operator": "Exists", "effect": "NoSchedule"}],
    },
    "file-store-on-a-claim": {
        "config": {"checkpoint": {"store": "file"}},
        "persistence": {"enabled": True, "size": "5Gi", "storageClass": "fast-ssd"},
    },
    "existing-claim-and-reference-configmap": {
        "config": {"checkpoint": {"store": "file"}},
        "persistence": {"enabled": True, "existingClaim": "driftd-state"},
        "referenceConfigMap": {"name": "fraud-reference", "key": "fraud.json"},
    },
    "reference-path-ephemeral-file-store": {
        "config": {
            "checkpoint": {"store": "file"},
            "reference": {"path": "/etc/driftd-reference/reference.json"},
        },
        "extraVolumes": [{"name": "reference", "configMap": {"name": "fraud-reference"}}],
        "extraVolumeMounts": [
            {"name": "reference", "mountPath": "/etc/driftd-reference", "readOnly": True}
        ],
    },
}
FULLNAME = "fraud-driftd"
"""The rendered resources' name (release "fraud", chart "driftd")."""
UNSAFE_VALUE_SETS: dict[str, tuple[dict[str, Any], str]] = {
    "file-store-warmup-emptydir": (
        {"config": {"checkpoint": {"store": "file"}}},
        "config.checkpoint.store=file with a warm-up reference",
    ),
    "unset-store-is-file": (
        {"config": {"checkpoint": {"store": None}, "reference": {"warmup_events": 1000}}},
        "config.checkpoint.store=file with a warm-up reference",
    ),
    "no-store-warmup": (
        {"config": {"checkpoint": {"store": "none"}}},
        "config.checkpoint.store=none with a warm-up reference",
    ),
    "file-store-replicas": (
        {
            "replicaCount": 2,
            "config": {"checkpoint": {"store": "file"}},
            "referenceConfigMap": {"name": "fraud-reference"},
        },
        "config.checkpoint.store=file with replicaCount 2",
    ),
    "claim-shared-by-replicas": (
        {"replicaCount": 2, "persistence": {"enabled": True}},
        "persistence.enabled=true with replicaCount 2",
    ),
}
"""Value sets whose state a rescheduled pod would lose or replicas would share, and
the start of the chart's refusal."""


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _plain() -> dict[str, dict[str, Any]]:
    """The plain manifests, by kind."""
    docs = [d for p in sorted(K8S_DIR.glob("*.yaml")) for d in _docs(p.read_text())]
    return {d["kind"]: d for d in docs}


def _render(values: dict[str, Any]) -> list[dict[str, Any]]:
    chart = helm_python.Chart.load(str(CHART))
    rendered = chart.render(values, name="fraud", namespace="ml")
    return [
        doc
        for name, text in sorted(rendered.items())
        if name.endswith(".yaml")
        for doc in _docs(text)
    ]


def _validate(doc: dict[str, Any]) -> None:
    for version in KUBE_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} on {version}: {exc}")


def _dockerfile_config_path() -> str:
    cmd = re.search(r"^CMD (\[.*\])$", DOCKERFILE.read_text(), re.MULTILINE)
    assert cmd is not None
    args: list[str] = yaml.safe_load(cmd.group(1))
    return args[args.index("--config") + 1]


def _container_ports(container: dict[str, Any]) -> set[str]:
    return {p["name"] for p in container.get("ports", [])}


def _check_pod_monitor(monitor: dict[str, Any], deployment: dict[str, Any], driftd: Any) -> None:
    """The PodMonitor selects the Deployment's pods, scrapes driftd's port, job=driftd."""
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in _container_ports(driftd)
    assert endpoint["path"] == "/metrics"
    assert {"targetLabel": "job", "replacement": "driftd"} in endpoint["relabelings"]


def _check_probes(container: dict[str, Any]) -> None:
    ports = _container_ports(container)
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ports


def _load_config(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from monitor.config import load_settings

    monkeypatch.setenv("PD_ROUTING_KEY", "test-routing-key")
    path = tmp_path / "driftd.yaml"
    path.write_text(text)
    return load_settings(path)


def _volume_holding(pod: dict[str, Any], container: dict[str, Any], path: Path) -> dict[str, Any]:
    """The pod volume that ``path`` lies on in ``container`` (its deepest mount)."""
    mounts = [
        m
        for m in container["volumeMounts"]
        if path == Path(m["mountPath"]) or Path(m["mountPath"]) in path.parents
    ]
    assert mounts, f"{path} is on no volume of {container['name']}"
    mount = max(mounts, key=lambda m: len(Path(m["mountPath"]).parts))
    volumes = {v["name"]: v for v in pod["volumes"]}
    volume: dict[str, Any] = volumes[mount["name"]]
    return volume


def _state_directory(settings: Any) -> Path:
    """The file store's directory as the image resolves it (its working directory)."""
    *_, workdir = re.findall(r"^WORKDIR (\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    directory: Path = settings.checkpoint.directory
    return Path(workdir) / directory


# --- plain sidecar manifests --------------------------------------------------------


@pytest.mark.parametrize("kind", ["ConfigMap", "Deployment"])
def test_plain_manifest_validates(kind: str) -> None:
    """The sidecar Deployment and its ConfigMap pass strict schema validation."""
    _validate(_plain()[kind])


def test_driftd_is_a_native_sidecar() -> None:
    """driftd is an init container with restartPolicy Always, beside the model server."""
    pod = _plain()["Deployment"]["spec"]["template"]["spec"]
    (driftd,) = [c for c in pod["initContainers"] if c["name"] == "driftd"]
    assert driftd["restartPolicy"] == "Always"
    assert all(c["name"] != "driftd" for c in pod["containers"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] >= 30
    _check_probes(driftd)


def test_sidecar_config_and_secret_are_wired() -> None:
    """The ConfigMap is mounted at the image's config path; the key comes from a Secret."""
    kinds = _plain()
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (driftd,) = [c for c in pod["initContainers"] if c["name"] == "driftd"]
    config_path = Path(_dockerfile_config_path())
    assert driftd["args"][driftd["args"].index("--config") + 1] == str(config_path)
    volumes = {v["name"]: v for v in pod["volumes"]}
    (mount,) = [m for m in driftd["volumeMounts"] if m["mountPath"] == str(config_path.parent)]
    assert volumes[mount["name"]]["configMap"]["name"] == kinds["ConfigMap"]["metadata"]["name"]
    assert config_path.name in kinds["ConfigMap"]["data"]
    env = {e["name"]: e for e in driftd["env"]}
    secret = env["PD_ROUTING_KEY"]["valueFrom"]["secretKeyRef"]
    assert secret["name"] and secret["key"]
    assert "value" not in env["PD_ROUTING_KEY"]


def test_sidecar_config_is_valid_and_pages_with_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """driftd accepts the ConfigMap's driftd.yaml; its PagerDuty key is the Secret's env."""
    settings = _load_config(_plain()["ConfigMap"]["data"]["driftd.yaml"], tmp_path, monkeypatch)
    (pagerduty,) = [s for s in settings.alerts.sinks if s.type == "pagerduty"]
    assert pagerduty.routing_key.env == "PD_ROUTING_KEY"
    assert settings.metrics.host == "0.0.0.0"


def test_plain_replicas_share_their_state_through_kafka(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replicas of the sidecar use the Kafka store and one reference profile from a ConfigMap."""
    kinds = _plain()
    deployment = kinds["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (driftd,) = [c for c in pod["initContainers"] if c["name"] == "driftd"]
    settings = _load_config(kinds["ConfigMap"]["data"]["driftd.yaml"], tmp_path, monkeypatch)
    assert deployment["spec"]["replicas"] > 1
    assert settings.checkpoint.store == "kafka"
    assert settings.reference.warmup_events is None and settings.reference.path is not None
    assert _volume_holding(pod, driftd, settings.reference.path)["configMap"]["name"]


def test_plain_pod_monitor_scrapes_the_sidecar() -> None:
    """The PodMonitor selects the model server's pods and scrapes driftd's port."""
    kinds = _plain()
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (driftd,) = [c for c in pod["initContainers"] if c["name"] == "driftd"]
    _check_pod_monitor(kinds["PodMonitor"], kinds["Deployment"], driftd)


def test_kustomization_lists_every_manifest() -> None:
    """kustomization.yaml applies every manifest of the directory."""
    resources = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())["resources"]
    manifests = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(resources) == manifests


# --- the Helm chart -----------------------------------------------------------------


def test_helm_lint_is_clean() -> None:
    """helm lint --strict finds no warning or error (Helm's engine, via helm-python-sdk)."""
    for values in VALUE_SETS.values():
        report = helm_python.lint(str(CHART), values, strict=True)
        serious = [m for m in report["messages"] if m["severity"] > 1]  # 1 is INFO
        assert report["errors"] == [] and serious == [], report


def _rendered() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, values in VALUE_SETS.items():
        for doc in _render(values):
            yield name, doc


@pytest.mark.parametrize(
    "values_name,doc",
    list(_rendered()),
    ids=lambda x: x if isinstance(x, str) else f"{x['kind']}",
)
def test_rendered_manifest_validates_and_has_recommended_labels(
    values_name: str, doc: dict[str, Any]
) -> None:
    """Each rendered object validates (CRDs aside) and carries the recommended labels."""
    assert doc["metadata"]["labels"].keys() >= RECOMMENDED_LABELS, values_name
    assert doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    if doc["kind"] not in OPERATOR_KINDS:
        _validate(doc)


@pytest.mark.parametrize("values_name", sorted(VALUE_SETS))
def test_chart_wiring(values_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Config, probes, secret, PodMonitor and rules of the rendered chart fit together."""
    values = VALUE_SETS[values_name]
    docs = {d["kind"]: d for d in _render(values)}
    deployment = docs["Deployment"]
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"].keys() >= RECOMMENDED_LABELS
    assert "checksum/config" in pod["metadata"]["annotations"]
    (driftd,) = pod["spec"]["containers"]
    _check_probes(driftd)
    config_path = _dockerfile_config_path()
    assert driftd["args"][-1] == config_path

    settings = _load_config(docs["ConfigMap"]["data"]["driftd.yaml"], tmp_path, monkeypatch)
    port = values.get("metrics", {}).get("port", 9108)
    assert (settings.metrics.host, settings.metrics.port) == ("0.0.0.0", port)
    assert driftd["ports"][0]["containerPort"] == port

    env = {e["name"]: e for e in driftd["env"]}
    if values.get("pagerduty", {}).get("existingSecret"):
        ref = env["PD_ROUTING_KEY"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "driftd-pagerduty", "key": "routing-key"}
    else:
        assert "PD_ROUTING_KEY" not in env

    if values.get("podMonitor", {}).get("enabled", True):
        _check_pod_monitor(docs["PodMonitor"], deployment, driftd)
    else:
        assert "PodMonitor" not in docs
    if values.get("prometheusRule", {}).get("enabled", True):
        assert docs["PrometheusRule"]["spec"] == yaml.safe_load(RULES.read_text())
    else:
        assert "PrometheusRule" not in docs


@pytest.mark.parametrize("values_name", sorted(VALUE_SETS))
def test_chart_state_survives_a_rescheduled_pod(
    values_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every accepted value set keeps its state on Kafka or a claim, or needs none kept."""
    docs = {d["kind"]: d for d in _render(VALUE_SETS[values_name])}
    settings = _load_config(docs["ConfigMap"]["data"]["driftd.yaml"], tmp_path, monkeypatch)
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (driftd,) = pod["containers"]
    if settings.reference.path is not None:
        assert settings.reference.warmup_events is None
        _volume_holding(pod, driftd, settings.reference.path)
    elif settings.checkpoint.store != "kafka":
        state = _volume_holding(pod, driftd, _state_directory(settings))
        assert "persistentVolumeClaim" in state, values_name


def test_chart_defaults_to_the_kafka_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """By default the warm-up reference and the checkpoints live on the compacted topic."""
    docs = {d["kind"]: d for d in _render({})}
    settings = _load_config(docs["ConfigMap"]["data"]["driftd.yaml"], tmp_path, monkeypatch)
    assert settings.checkpoint.store == "kafka"
    assert settings.checkpoint.topic == "driftd-checkpoints"
    assert settings.reference.warmup_events is not None
    assert "PersistentVolumeClaim" not in docs
    assert "strategy" not in docs["Deployment"]["spec"]


def test_persistence_mounts_a_claim_at_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """persistence.enabled renders a claim that holds the file store, not an emptyDir."""
    values = VALUE_SETS["file-store-on-a-claim"]
    docs = {d["kind"]: d for d in _render(values)}
    settings = _load_config(docs["ConfigMap"]["data"]["driftd.yaml"], tmp_path, monkeypatch)
    claim = docs["PersistentVolumeClaim"]
    assert claim["metadata"]["name"] == FULLNAME
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    deployment = docs["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (driftd,) = pod["containers"]
    assert settings.checkpoint.store == "file"
    state = _volume_holding(pod, driftd, _state_directory(settings))
    assert state["persistentVolumeClaim"] == {"claimName": FULLNAME}
    assert "emptyDir" not in state
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_existing_claim_is_mounted_not_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """persistence.existingClaim is mounted at the state directory; no claim is rendered."""
    docs = {d["kind"]: d for d in _render(VALUE_SETS["existing-claim-and-reference-configmap"])}
    settings = _load_config(docs["ConfigMap"]["data"]["driftd.yaml"], tmp_path, monkeypatch)
    assert "PersistentVolumeClaim" not in docs
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (driftd,) = pod["containers"]
    state = _volume_holding(pod, driftd, _state_directory(settings))
    assert state["persistentVolumeClaim"] == {"claimName": "driftd-state"}


def test_reference_configmap_replaces_the_warmup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """referenceConfigMap is mounted read-only and becomes reference.path, without a warm-up."""
    docs = {d["kind"]: d for d in _render(VALUE_SETS["existing-claim-and-reference-configmap"])}
    settings = _load_config(docs["ConfigMap"]["data"]["driftd.yaml"], tmp_path, monkeypatch)
    assert settings.reference.warmup_events is None
    assert settings.reference.path == Path("/etc/driftd-reference/fraud.json")
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (driftd,) = pod["containers"]
    volume = _volume_holding(pod, driftd, settings.reference.path)
    assert volume["configMap"]["name"] == "fraud-reference"
    assert volume["configMap"]["items"] == [{"key": "fraud.json", "path": "fraud.json"}]
    (mount,) = [m for m in driftd["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True


@pytest.mark.parametrize("values_name", sorted(UNSAFE_VALUE_SETS))
def test_unsafe_state_fails_to_render(values_name: str) -> None:
    """State a rescheduled pod loses, or replicas share, stops the render with a reason."""
    values, message = UNSAFE_VALUE_SETS[values_name]
    with pytest.raises(helm_python.HelmError, match=re.escape(message)):
        _render(values)


def test_allow_ephemeral_state_renders_the_unsafe_warmup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """allowEphemeralState accepts a file store on an emptyDir with a warm-up, as asked."""
    values, _ = UNSAFE_VALUE_SETS["file-store-warmup-emptydir"]
    docs = {d["kind"]: d for d in _render({**values, "allowEphemeralState": True})}
    settings = _load_config(docs["ConfigMap"]["data"]["driftd.yaml"], tmp_path, monkeypatch)
    assert settings.checkpoint.store == "file" and settings.reference.warmup_events
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (driftd,) = pod["containers"]
    assert "emptyDir" in _volume_holding(pod, driftd, _state_directory(settings))
    _validate(docs["Deployment"])


def test_schema_rejects_bad_values() -> None:
    """values.schema.json stops a mistyped value at render time."""
    with pytest.raises(helm_python.HelmError):
        _render({"metrics": {"port": "9108"}})
    with pytest.raises(helm_python.HelmError):
        _render({"podMonitor": {"enabld": True}})
    with pytest.raises(helm_python.HelmError):
        _render({"config": {"checkpoint": {"store": "files"}}})
    with pytest.raises(helm_python.HelmError):
        _render({"persistence": {"enabled": True, "size": 1}})
    with pytest.raises(helm_python.HelmError):
        _render({"referenceConfigMap": {"nam": "fraud-reference"}})


def _leaf_keys(path: Path) -> list[tuple[str, bool]]:
    """(dotted key, has a comment line right above it) for every values.yaml leaf.

    Keys inside the free-form blocks (``config`` is driftd's own configuration,
    documented in the project README; the others are Kubernetes objects) are not part of
    the chart's interface: the blocks themselves are.
    """
    lines = path.read_text().splitlines()
    out: list[tuple[str, bool]] = []
    stack: list[tuple[int, str]] = []
    for i, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][\w]*):(.*)$", line)
        if match is None:
            continue
        indent, key, rest = len(match.group(1)), match.group(2), match.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [key])
        stack.append((indent, key))
        if dotted.split(".")[0] in FREE_FORM and "." in dotted:
            continue
        following = next(
            (x for x in lines[i + 1 :] if x.strip() and not x.lstrip().startswith("#")), ""
        )
        is_parent = not rest and len(following) - len(following.lstrip()) > indent
        documented = i > 0 and lines[i - 1].lstrip().startswith("#")
        if not is_parent or dotted in {
            "config",
            "podSecurityContext",
            "securityContext",
            "resources",
        }:
            out.append((dotted, documented))
    return out


def test_every_value_is_documented() -> None:
    """Each values.yaml key has a comment and a row in the chart README."""
    readme = (CHART / "README.md").read_text()
    leaves = _leaf_keys(CHART / "values.yaml")
    assert len(leaves) > 20
    for key, documented in leaves:
        assert documented, f"values.yaml: {key} has no comment"
        assert f"| `{key}` |" in readme, f"README.md: no row for {key}"
