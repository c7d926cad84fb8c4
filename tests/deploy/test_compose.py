"""The docker compose stack, checked statically, then wired together for real.

Docker does not run in CI, so the compose file is checked as data: it parses, its
services, volumes and dependencies are consistent, every mounted file exists, and the
addresses the services use to find each other agree. Then what it wires together runs
with the real binaries: the demo producer fills a real Kafka broker, the daemon
consumes it with the compose driftd.yaml, a real Prometheus runs the compose
prometheus.yml (retargeted to loopback) with its rules and alerting, and a real
Alertmanager runs the compose alertmanager.yml.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.alertmanager_server import Alertmanager, find_alertmanager, wait_for
from tests.deploy.dashboards import ROOT
from tests.deploy.tools import require_module
from tests.kafka_broker import unique_topic
from tests.loopback import loopback_process
from tests.prometheus_server import prometheus_server
from tests.required_tools import missing_tool

DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
DRIFTD_YAML = DEPLOY / "compose" / "driftd.yaml"
AM_YAML = DEPLOY / "compose" / "alertmanager.yml"
PROM_YAML = DEPLOY / "prometheus" / "prometheus.yml"
PRODUCER = DEPLOY / "compose" / "produce_demo.py"
DOCKERFILE = DEPLOY / "Dockerfile"
SERVICES = {"kafka", "demo-producer", "driftd", "prometheus", "alertmanager", "grafana"}


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return doc


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each short-syntax volume entry."""
    out = []
    for entry in service.get("volumes", []):
        source, target, *_ = str(entry).split(":")
        out.append((source, target))
    return out


def _dockerfile_config_path() -> str:
    cmd = re.search(r"^CMD (\[.*\])$", DOCKERFILE.read_text(), re.MULTILINE)
    assert cmd is not None
    args: list[str] = yaml.safe_load(cmd.group(1))
    return args[args.index("--config") + 1]


def _host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit("//", 1)[-1].rstrip("/").rsplit(":", 1)
    return host, int(port)


# --- static checks ------------------------------------------------------------------


def test_compose_file_has_the_whole_stack() -> None:
    """Kafka, driftd, the demo producer, Prometheus, Alertmanager and Grafana are there."""
    compose = _compose()
    assert set(compose["services"]) == SERVICES
    kafka = compose["services"]["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert "ZOOKEEPER" not in " ".join(kafka)


def test_compose_file_matches_the_compose_specification() -> None:
    """The file validates against the Compose Specification schema (bundled, offline)."""
    tool = Path(sys.executable).with_name("check-jsonschema")
    if not tool.exists():
        require_module("check_jsonschema")  # skips locally, fails in CI
    result = subprocess.run(
        [str(tool), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_named_volumes_are_declared_and_used() -> None:
    """Every named volume a service mounts is declared, and every declared one is used."""
    compose = _compose()
    declared = set(compose.get("volumes") or {})
    used = {
        source
        for service in compose["services"].values()
        for source, _ in _mounts(service)
        if not source.startswith((".", "/"))
    }
    assert used == declared


def test_every_bind_mounted_file_exists() -> None:
    """Each bind mount's source exists in the repository."""
    for name, service in _compose()["services"].items():
        for source, target in _mounts(service):
            if source.startswith((".", "/")):
                assert (DEPLOY / source).resolve().exists(), f"{name}: {source} -> {target}"


def test_dependencies_and_ports_are_consistent() -> None:
    """depends_on names real services and no host port is published twice."""
    services = _compose()["services"]
    published = []
    for name, service in services.items():
        deps = service.get("depends_on", [])
        assert set(deps) <= set(services), name
        published += [str(p).split(":")[0] for p in service.get("ports", [])]
    assert len(published) == len(set(published))


def test_driftd_image_is_built_from_the_repository() -> None:
    """driftd and the producer build deploy/Dockerfile from the repository root."""
    services = _compose()["services"]
    for name in ("driftd", "demo-producer"):
        build = services[name]["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT
        assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
    assert (DEPLOY / "Dockerfile.dockerignore").exists()


def test_driftd_config_is_mounted_at_the_image_s_documented_path() -> None:
    """The compose driftd.yaml is mounted where the image's default command reads it."""
    mounts = dict(_mounts(_compose()["services"]["driftd"]))
    assert mounts["./compose/driftd.yaml"] == _dockerfile_config_path()


def test_compose_driftd_config_is_valid() -> None:
    """driftd accepts the compose driftd.yaml (exact keys, types and cross-checks)."""
    from monitor.config import load_settings

    settings = load_settings(DRIFTD_YAML)
    assert settings.metrics.host == "0.0.0.0"


def test_services_find_each_other() -> None:
    """Kafka, driftd, Prometheus, Alertmanager and Grafana addresses agree."""
    compose = _compose()
    services = compose["services"]
    driftd = yaml.safe_load(DRIFTD_YAML.read_text())

    kafka_env = services["kafka"]["environment"]
    advertised = _host_port(kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")[0])
    assert advertised[0] == "kafka"
    assert {_host_port(b) for b in driftd["kafka"]["bootstrap_servers"]} == {advertised}
    producer_cmd = services["demo-producer"]["command"]
    assert _host_port(producer_cmd[producer_cmd.index("--bootstrap") + 1]) == advertised

    prom = yaml.safe_load(PROM_YAML.read_text())
    (driftd_job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "driftd"]
    assert driftd_job["static_configs"][0]["targets"] == [f"driftd:{driftd['metrics']['port']}"]
    assert f"{driftd['metrics']['port']}:{driftd['metrics']['port']}" in services["driftd"]["ports"]
    (am_target,) = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert _host_port(am_target) == ("alertmanager", 9093)
    (am_sink,) = [s for s in driftd["alerts"]["sinks"] if s["type"] == "alertmanager"]
    assert _host_port(am_sink["url"]) == ("alertmanager", 9093)
    assert dict(_mounts(services["prometheus"]))["./prometheus"] == "/etc/prometheus"

    datasource = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "datasources" / "driftd.yml").read_text()
    )["datasources"][0]
    assert _host_port(datasource["url"]) == ("prometheus", 9090)
    grafana_mounts = dict(_mounts(services["grafana"]))
    assert grafana_mounts["../grafana/provisioning"] == "/etc/grafana/provisioning"


def test_producer_runs_the_mounted_script() -> None:
    """The demo producer's entrypoint runs the script the compose file mounts."""
    producer = _compose()["services"]["demo-producer"]
    mounts = dict(_mounts(producer))
    assert mounts["./compose/produce_demo.py"] in producer["entrypoint"]


def test_amtool_accepts_the_compose_alertmanager_config() -> None:
    """amtool check-config accepts the compose alertmanager.yml."""
    amtool = Path(find_alertmanager()).with_name("amtool")
    if not amtool.exists():
        missing_tool(f"{amtool} not found next to the Alertmanager binary")
    result = subprocess.run(
        [str(amtool), "check-config", str(AM_YAML)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the same configs, wired together with the real binaries -------------------------


def _load_producer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("produce_demo", PRODUCER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def _alertmanager(config: Path) -> Iterator[Alertmanager]:
    """The real Alertmanager on loopback with ``config`` (the compose one)."""
    binary = find_alertmanager()
    with tempfile.TemporaryDirectory(prefix="driftd-compose-am-") as tmp:
        log_path = Path(tmp) / "alertmanager.log"

        def argv(port: int) -> list[str]:
            return [
                binary,
                f"--config.file={config}",
                f"--storage.path={tmp}/data",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ]

        with loopback_process("Alertmanager", argv, log_path, 30.0) as url:
            yield Alertmanager(url=url, log_path=log_path)


def _prometheus_config(driftd_port: int, am_port: int) -> dict[str, Any]:
    """The compose prometheus.yml, retargeted to loopback, scraping every second."""
    config: dict[str, Any] = yaml.safe_load(PROM_YAML.read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    config["rule_files"] = [str(PROM_YAML.parent / pattern) for pattern in config["rule_files"]]
    for job in config["scrape_configs"]:
        if job["job_name"] == "driftd":
            job["static_configs"] = [{"targets": [f"127.0.0.1:{driftd_port}"]}]
    config["scrape_configs"] = [j for j in config["scrape_configs"] if j["job_name"] == "driftd"]
    config["alerting"]["alertmanagers"][0]["static_configs"] = [
        {"targets": [f"127.0.0.1:{am_port}"]}
    ]
    return config


@pytest.mark.integration
def test_compose_configs_work_together_on_real_services(kafka_bootstrap: str) -> None:
    """Producer -> Kafka -> driftd -> Prometheus and Alertmanager, with the compose configs."""
    from prometheus_client import CollectorRegistry

    from monitor.config import Settings
    from monitor.wiring import build_daemon

    topic, labels, dlq = (unique_topic(f"driftd-compose-{n}") for n in ("in", "labels", "dlq"))
    producer = _load_producer()
    args = producer.parse_args(
        [
            *("--bootstrap", kafka_bootstrap, "--topic", topic, "--labels-topic", labels),
            *("--dead-letter-topic", dlq, "--rate", "0", "--events", "40000"),
            *("--batch", "2000", "--label-delay", "0", "--feature-shift-at", "20000"),
            # One partition keeps the pre-produced stream in order for the warm-up.
            *("--partitions", "1"),
        ]
    )
    assert producer.run(args) == 40_000

    data: dict[str, Any] = yaml.safe_load(DRIFTD_YAML.read_text())
    data["kafka"].update(
        bootstrap_servers=[kafka_bootstrap],
        topics=[topic],
        labels_topic=labels,
        dead_letter_topic=dlq,
        group_id=unique_topic("driftd-compose-group"),
        poll_timeout_ms=200,
    )
    # Smaller windows than the compose stack's, so the shift fires within seconds.
    data["reference"] = {"warmup_events": 6_000}
    data["windows"] = {"size_events": 2_000, "min_samples": 500}
    data["metrics"] = {"host": "127.0.0.1", "port": 0}
    data["logging"] = {"level": "warning", "format": "json"}
    data["checkpoint"] = {"store": "none"}  # the stack's volume path is not ours to write
    if "labels" not in Settings.model_fields:  # the daemon does not read labels yet
        data.pop("labels", None)
        data["kafka"].pop("labels_topic")
        data["detectors"].pop("fairness", None)

    with _alertmanager(AM_YAML) as am:
        for sink in data["alerts"]["sinks"]:
            if sink["type"] == "alertmanager":
                sink["url"] = am.url
        settings = Settings(**data)
        daemon = build_daemon(settings, registry=CollectorRegistry())
        thread = threading.Thread(target=daemon.run, daemon=True, name="driftd-compose")
        thread.start()
        try:
            server = daemon.server
            assert server is not None
            port = wait_for(lambda: server.port, timeout_s=30, what="the metrics port")
            am_port = int(am.url.rsplit(":", 1)[1])
            with prometheus_server(config=_prometheus_config(port, am_port)) as prom:
                wait_for(
                    lambda: daemon.stats.records >= 40_000,
                    timeout_s=180,
                    interval_s=0.2,
                    what="the daemon to read the demo stream",
                )
                # driftd's own alertmanager sink pages the west shift into Alertmanager.
                firing = wait_for(
                    lambda: am.alerts(alertname="DriftDetected", segment="west"),
                    timeout_s=60,
                    what="DriftDetected for west in Alertmanager",
                )
                assert {a["labels"]["model"] for a in firing} == {"credit-risk"}
                feature_methods = {"psi", "ks", "chi2", "js"}
                north = [
                    a
                    for a in am.alerts(segment="north")
                    if a["labels"].get("method") in feature_methods
                ]
                assert north == []
                # Prometheus scrapes driftd, evaluates the rules, and knows the Alertmanager.
                wait_for(
                    lambda: [t for t in prom.targets() if t["health"] == "up"],
                    timeout_s=30,
                    what="the driftd target to be up",
                )
                assert prom.alertmanagers() == [f"{am.url}/api/v2/alerts"]
                time.sleep(2)  # a couple of rule evaluations on real data
                broken = [r for r in prom.rules() if r.get("health") == "err"]
                assert broken == [], broken
                active = prom.query(
                    'model_segment:driftd_drift_active:sum{model="credit-risk",segment="west"} > 0'
                )["data"]["result"]
                assert active
        finally:
            daemon.should_exit.set()
            thread.join(timeout=60)
    assert not thread.is_alive()
