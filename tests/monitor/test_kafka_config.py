"""Kafka settings the client would only refuse when it connects are refused with the config.

``driftd check-config`` (and ``driftd run``, before anything starts) names the key of a
TLS file kafka-python could not use and of SASL settings it would fail every login with;
the Kafka source itself validates nothing. The TLS files under ``fixtures/tls`` are a
self-signed test certificate and keys made for these tests only.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from monitor.cli import main
from monitor.config import KafkaConfig, kafka_tls_errors
from tests.monitor.cli_helpers import driftd_lines, write_config

ROOT = Path(__file__).resolve().parents[2]
TLS = Path(__file__).resolve().parent / "fixtures" / "tls"


def _check_config(
    tmp_path: Path, kafka: dict[str, Any], *, subprocess_run: bool = True
) -> subprocess.CompletedProcess[str]:
    """``driftd check-config`` on a config with these kafka settings: as a user runs it, or
    (``subprocess_run=False``, quicker) through ``main`` in this process."""
    config = write_config(tmp_path, {"reference": {"warmup_events": 100}, "kafka": kafka})
    args = ["check-config", "-c", str(config)]
    if not subprocess_run:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(args)
        return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DRIFTD_")}
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,  # an encrypted key must never wait for a passphrase
        env=env | {"PYTHONPATH": str(ROOT)},
    )


def _refused(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The keys check-config refused, with their messages (after asserting it exited 2)."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    prefix = "driftd: config error: "
    refused = {}
    for line in driftd_lines(proc.stderr):
        assert line.startswith(prefix), line
        key, _, message = line.removeprefix(prefix).partition(": ")
        refused[key] = message
    return refused


def test_check_config_names_a_missing_ca_file(tmp_path: Path) -> None:
    """A missing ssl_cafile fails check-config with exit 2, naming kafka.ssl_cafile."""
    missing = tmp_path / "ca.pem"
    refused = _refused(
        _check_config(tmp_path, {"security_protocol": "SSL", "ssl_cafile": str(missing)})
    )
    assert refused == {"kafka.ssl_cafile": f"{missing}: no such file"}


def test_check_config_names_a_ca_file_without_a_certificate(tmp_path: Path) -> None:
    """An ssl_cafile that exists but holds no PEM certificate (a key, say) is refused by key."""
    kafka = {"security_protocol": "SSL", "ssl_cafile": str(TLS / "key.pem")}
    refused = _refused(_check_config(tmp_path, kafka))
    assert list(refused) == ["kafka.ssl_cafile"]
    assert refused["kafka.ssl_cafile"].startswith(f"{TLS / 'key.pem'}: no PEM certificate in it")


def test_check_config_names_a_key_that_is_not_the_certificates(tmp_path: Path) -> None:
    """A client key that does not match the client certificate is refused as kafka.ssl_keyfile."""
    kafka = {
        "security_protocol": "SSL",
        "ssl_certfile": str(TLS / "cert.pem"),
        "ssl_keyfile": str(TLS / "other_key.pem"),
    }
    refused = _refused(_check_config(tmp_path, kafka, subprocess_run=False))
    assert list(refused) == ["kafka.ssl_keyfile"]
    assert "no unencrypted PEM private key for" in refused["kafka.ssl_keyfile"]


def test_check_config_names_an_encrypted_key_without_prompting(tmp_path: Path) -> None:
    """An encrypted client key (driftd has no passphrase setting) is refused, never prompted for."""
    kafka = {
        "security_protocol": "SSL",
        "ssl_certfile": str(TLS / "cert.pem"),
        "ssl_keyfile": str(TLS / "encrypted_key.pem"),
    }
    assert list(_refused(_check_config(tmp_path, kafka))) == ["kafka.ssl_keyfile"]


def test_check_config_names_a_key_without_a_certificate(tmp_path: Path) -> None:
    """An ssl_keyfile without ssl_certfile (kafka-python would ignore it) is refused by key."""
    kafka = {"security_protocol": "SSL", "ssl_keyfile": str(TLS / "key.pem")}
    refused = _refused(_check_config(tmp_path, kafka, subprocess_run=False))
    assert list(refused) == ["kafka.ssl_keyfile"]
    assert "needs ssl_certfile" in refused["kafka.ssl_keyfile"]


def test_check_config_names_missing_sasl_credentials(tmp_path: Path) -> None:
    """PLAIN or SCRAM without a user name and password fails check-config, naming both keys."""
    kafka = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512"}
    refused = _refused(_check_config(tmp_path, kafka))
    assert set(refused) == {"kafka.sasl_plain_username", "kafka.sasl_plain_password"}
    assert "sasl_mechanism SCRAM-SHA-512" in refused["kafka.sasl_plain_password"]


def test_check_config_refuses_oauthbearer(tmp_path: Path) -> None:
    """OAUTHBEARER (no token provider can be configured) is refused as kafka.sasl_mechanism."""
    kafka = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "OAUTHBEARER",
        "sasl_plain_username": "driftd",
        "sasl_plain_password": "secret",
    }
    assert list(_refused(_check_config(tmp_path, kafka, subprocess_run=False))) == [
        "kafka.sasl_mechanism"
    ]


def test_check_config_accepts_usable_tls_and_sasl_settings(tmp_path: Path) -> None:
    """A CA bundle, a matching certificate and key, and SASL credentials pass check-config."""
    kafka = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "driftd",
        "sasl_plain_password": "secret",
        "ssl_cafile": str(TLS / "cert.pem"),
        "ssl_certfile": str(TLS / "cert.pem"),
        "ssl_keyfile": str(TLS / "key.pem"),
    }
    proc = _check_config(tmp_path, kafka, subprocess_run=False)
    assert proc.returncode == 0, proc.stderr
    assert "driftd: config ok" in proc.stderr
    assert "secret" not in proc.stdout


def test_a_combined_certificate_and_key_file_needs_no_keyfile(tmp_path: Path) -> None:
    """An ssl_certfile holding both certificate and key is usable without ssl_keyfile."""
    both = tmp_path / "both.pem"
    both.write_bytes((TLS / "cert.pem").read_bytes() + (TLS / "key.pem").read_bytes())
    assert kafka_tls_errors(KafkaConfig(ssl_certfile=both)) == []
    errors = kafka_tls_errors(KafkaConfig(ssl_certfile=TLS / "cert.pem"))
    assert [e.key for e in errors] == ["kafka.ssl_certfile"]


def test_sasl_credentials_are_not_needed_without_a_sasl_protocol() -> None:
    """A mechanism left set with a plain protocol is unused by the client, so not refused."""
    KafkaConfig(security_protocol="SSL", sasl_mechanism="PLAIN")
    with pytest.raises(ValidationError) as caught:
        KafkaConfig(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN")
    assert {e["loc"] for e in caught.value.errors()} == {
        ("sasl_plain_username",),
        ("sasl_plain_password",),
    }
