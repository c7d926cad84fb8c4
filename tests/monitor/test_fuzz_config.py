"""Fuzzing config loading: garbage YAML and DRIFTD_ overrides fail naming a key, never otherwise.

``load_settings`` either returns ``Settings`` or raises ``InvalidConfigError`` whose
every error names a dotted key (or ``<file>`` / ``<root>`` when the file itself is
unreadable, not YAML or not a mapping). Nothing else may escape: the CLI turns that
one exception into exit 2, and anything else would be a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from monitor.cli import main
from monitor.config import Settings, load_settings
from monitor.errors import InvalidConfigError

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FILE_KEYS = {"<file>", "<root>"}


def _sections() -> dict[str, list[str]]:
    """Top-level key -> the key names of that section (empty for a plain value)."""
    out: dict[str, list[str]] = {}
    for name, info in Settings.model_fields.items():
        kind = info.annotation
        fields = (
            list(kind.model_fields)
            if isinstance(kind, type) and issubclass(kind, BaseModel)
            else []
        )
        out[info.alias or name] = fields
    return out


SECTIONS = _sections()
SUB_KEYS = sorted({k for keys in SECTIONS.values() for k in keys})


@contextmanager
def environment(overrides: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with every DRIFTD_ variable replaced by ``overrides`` (restored after)."""
    with mock.patch.dict(os.environ):
        for name in [n for n in os.environ if n.upper().startswith("DRIFTD_")]:
            del os.environ[name]
        os.environ.update(overrides)
        yield


def outcome(path: Path | None, env: dict[str, str]) -> Settings | InvalidConfigError:
    """What loading gives: settings or the config error. Any other exception fails the test."""
    with environment(env):
        try:
            return load_settings(path)
        except InvalidConfigError as exc:
            return exc


def env_roots(env: dict[str, str]) -> set[str]:
    """The top-level keys the DRIFTD_ variables address; a variable that addresses none
    (``DRIFTD___``) is named by its own name."""
    roots = {name[len("DRIFTD_") :].split("__")[0].lower() for name in env}
    return roots | {name for name in env if not name[len("DRIFTD_") :].strip("_")}


def assert_names_keys(
    result: Settings | InvalidConfigError, doc_keys: set[str], env: dict[str, str]
) -> None:
    """A config error lists at least one problem, each naming a dotted key that was given."""
    if isinstance(result, Settings):
        return
    assert result.errors
    known = set(SECTIONS) | {str(k) for k in doc_keys} | env_roots(env)
    for error in result.errors:
        assert isinstance(error.key, str) and error.key
        assert isinstance(error.message, str) and error.message
        assert f"{error.key}: " in str(result)
        if error.key not in FILE_KEYS:
            named = any(error.key == k or error.key.startswith(f"{k}.") for k in known)
            assert named, (error.key, error.message)


# --- strategies -----------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["earliest", "kafka", "demo", "file", "log", "SASL_SSL", "{model}", ""])
)
KEYS = (
    st.sampled_from(SUB_KEYS) | st.text(max_size=8) | st.integers(-3, 3) | st.none() | st.booleans()
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=3),
    max_leaves=10,
)


@st.composite
def documents(draw: st.DrawFn) -> dict[Any, Any]:
    """A mapping shaped roughly like a config: known sections with known and stray keys."""
    doc: dict[Any, Any] = {}
    chosen: list[str] = draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=4, unique=True))
    for section in chosen:
        fields = SECTIONS[section]
        as_section: bool = draw(st.booleans())
        if fields and as_section:
            names = st.sampled_from(fields) | KEYS
            doc[section] = draw(st.dictionaries(names, VALUES, max_size=4))
        else:
            doc[section] = draw(VALUES)
    stray = st.text(max_size=8) | st.integers() | st.none() | st.booleans()
    stray |= st.sampled_from(
        ["_env_prefix", "_env_file", "_secrets_dir", "_cli_parse_args", "schema_"]
    )
    for key in draw(st.lists(stray, max_size=2)):
        doc[key] = draw(VALUES)
    return doc


FRAGMENTS = [
    "kafka:\n",
    "  topics: [",
    "  bootstrap_servers: a:1\n",
    "windows:\n  size_events: ",
    "9" * 5_000,
    "1e999",
    ".nan",
    ".inf",
    "-.inf",
    "0x1F",
    "~",
    "- ",
    "&a ",
    "*a",
    "*b",
    "!!python/object:os.system ",
    "!!binary aGk=",
    "!!set {a}",
    "? [1, 2]\n: 3\n",
    "{",
    "}",
    "[" * 400,  # a few of these nest past the recursion limit
    "]",
    ": :",
    "\t",
    "%YAML 1.1\n",
    "---\n",
    "...\n",
    "'",
    '"\\x',
    "\n",
    "  ",
    "2026-01-01",
    "schema:\n  segment_by: ",
    "alerts:\n  sinks:\n    - type: pagerduty\n      name: p\n      routing_key: k\n",
    "      grafana_url: '{model",
]
GARBAGE_YAML = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=10), max_size=12).map("".join)
VALID_YAML = (
    "model: fraud\n"
    "kafka:\n  topics: [inference]\n  group_id: g\n"
    "schema:\n  segment_by: [model_version, features.country]\n"
    "windows:\n  size_events: 1000\n  mode: sliding\n"
    "detectors:\n  psi: {threshold: 0.3, clear: 0.1}\n"
    "alerts:\n  sinks: [{type: log, name: log}]\n  routes: [{sinks: [log]}]\n"
)


@st.composite
def mutated_yaml(draw: st.DrawFn) -> bytes:
    """The valid config above, truncated, with a byte flipped, or with garbage inserted."""
    data = VALID_YAML.encode()
    at = draw(st.integers(0, len(data) - 1))
    how = draw(st.sampled_from(["truncate", "flip", "insert"]))
    if how == "truncate":
        return data[:at]
    if how == "flip":
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    return data[:at] + draw(st.sampled_from(FRAGMENTS)).encode() + data[at:]


ENV_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
ENV_VALUES = ENV_TEXT | st.sampled_from(
    [
        "",
        "null",
        "{}",
        "[]",
        '{"x": 1}',
        '["a", 2]',
        "[" * 10_000,
        "{" * 3_000,
        "9" * 5_000,
        "1e999",
        "nan",
        "-inf",
        "-1",
        "true",
        '{"size_events": NaN}',
        '[{"type": "log", "name": "log"}]',
    ]
)
NAME_PARTS = st.sampled_from([*SECTIONS, *SUB_KEYS]) | st.from_regex(
    r"[A-Za-z0-9_]{1,8}", fullmatch=True
)
ENV_NAMES = st.lists(NAME_PARTS, min_size=1, max_size=3).map(
    lambda parts: "DRIFTD_" + "__".join(parts).upper()
)
ENVS = st.dictionaries(ENV_NAMES, ENV_VALUES, max_size=3)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file the fuzzed configs are written to in turn."""
    return tmp_path_factory.mktemp("fuzz-config") / "driftd.yaml"


# --- properties -----------------------------------------------------------------------


@FUZZ
@given(doc=documents(), env=ENVS)
def test_config_shaped_documents_load_or_name_a_key(
    config_file: Path, doc: dict[Any, Any], env: dict[str, str]
) -> None:
    """Config-shaped YAML with wrong types, stray keys and huge values: settings or a named key."""
    text = yaml.safe_dump(doc, allow_unicode=True)
    config_file.write_text(text, encoding="utf-8")
    # The keys as read back: PyYAML does not round-trip every key ("\x85" comes back " ").
    keys = set(map(str, doc)) | set(map(str, yaml.safe_load(text)))
    assert_names_keys(outcome(config_file, env), keys, env)


@FUZZ
@given(text=GARBAGE_YAML | st.text(max_size=60), env=ENVS)
def test_garbage_yaml_loads_or_names_a_key(
    config_file: Path, text: str, env: dict[str, str]
) -> None:
    """Random YAML fragments and text: settings, a named key, or a file-level error."""
    config_file.write_text(text, encoding="utf-8")
    result = outcome(config_file, env)
    try:
        loaded = yaml.safe_load(text)
    except Exception:  # not YAML: only a file-level error can name it
        assert isinstance(result, InvalidConfigError)
        assert result.keys == ["<file>"]
        assert str(config_file) in str(result)
        return
    keys = set(map(str, loaded)) if isinstance(loaded, dict) else set()
    assert_names_keys(result, keys, env)


@FUZZ
@given(data=mutated_yaml() | st.binary(max_size=80))
def test_mutated_and_binary_files_load_or_name_a_key(config_file: Path, data: bytes) -> None:
    """A valid config truncated, flipped or spliced, and raw bytes: settings or a named key."""
    config_file.write_bytes(data)
    result = outcome(config_file, {})
    keys: set[str] = set()
    with suppress(Exception):  # not UTF-8 or not YAML: no key names to expect
        loaded = yaml.safe_load(data.decode("utf-8"))
        keys = set(map(str, loaded)) if isinstance(loaded, dict) else set()
    assert_names_keys(result, keys, {})


@FUZZ
@given(env=ENVS)
def test_env_overrides_alone_load_or_name_a_key(env: dict[str, str]) -> None:
    """Garbage DRIFTD_ variables without a file: settings, or errors naming the overridden key."""
    result = outcome(None, env)
    assert_names_keys(result, set(), env)
    if isinstance(result, InvalidConfigError):
        assert not set(result.keys) & FILE_KEYS


def test_a_variable_that_addresses_no_key_is_named_as_written() -> None:
    """DRIFTD___ (found by the fuzzer) is refused under its own name, not '<environment>'."""
    for name in ("DRIFTD___", "DRIFTD____", "DRIFTD_"):
        result = outcome(None, {"DRIFTD_MODEL": "m", name: ""})
        assert isinstance(result, InvalidConfigError)
        assert result.keys == [name], result


# --- named regressions: each once crashed with something other than InvalidConfigError

DEEP_YAML = "kafka: " + "[" * 1_100 + "]" * 1_100 + "\n"  # PyYAML recurses per level
PAGERDUTY = (
    "alerts:\n  sinks:\n    - {type: pagerduty, name: p, routing_key: k, grafana_url: '%s'}\n"
)
BAD_CONFIGS: list[tuple[str, bytes, dict[str, str], str]] = [
    ("integer section name", b"1: x\n", {}, "1"),
    ("null section name", b"~: x\n", {}, "None"),
    ("date section name", b"2026-01-01: x\n", {}, "2026-01-01"),
    ("pydantic-settings option as key", b"_env_prefix: FOO_\n", {}, "_env_prefix"),
    ("env file option as key", b"_env_file: /etc/passwd\n", {}, "_env_file"),
    ("cli option as key", b"_cli_parse_args: true\n", {}, "_cli_parse_args"),
    ("not UTF-8", b"model: caf\xe9\n", {}, "<file>"),
    ("nested 1,100 levels", DEEP_YAML.encode(), {}, "<file>"),
    ("5,000-digit integer", b"windows:\n  size_events: " + b"9" * 5_000 + b"\n", {}, "<file>"),
    ("a list, not a mapping", b"- kafka\n- windows\n", {}, "<root>"),
    ("python tag", b"model: !!python/object:os.system x\n", {}, "<file>"),
    ("unknown key", b"windows:\n  sise_events: 10\n", {}, "windows.sise_events"),
    ("wrong type", b"windows:\n  size_events: [1, 2]\n", {}, "windows.size_events"),
    ("infinite integer field", b"windows:\n  size_events: .inf\n", {}, "windows.size_events"),
    (
        "NaN threshold",
        b"detectors:\n  psi: {threshold: .nan, clear: 0.1}\n",
        {},
        "detectors.psi.threshold",
    ),
    (
        "link with bad conversion",
        (PAGERDUTY % "{model!x}").encode(),
        {},
        "alerts.sinks.0.pagerduty",
    ),
    (
        "link with nested field",
        (PAGERDUTY % "{model:{oops}}").encode(),
        {},
        "alerts.sinks.0.pagerduty",
    ),
    (
        "link with bad format spec",
        (PAGERDUTY % "{model:d}").encode(),
        {},
        "alerts.sinks.0.pagerduty",
    ),
    ("env list not JSON", b"", {"DRIFTD_KAFKA__TOPICS": "not json"}, "kafka.topics"),
    ("env section not JSON", b"", {"DRIFTD_WINDOWS": "{"}, "windows"),
    (
        "env nested 10,000 levels",
        b"",
        {"DRIFTD_DETECTORS__OVERRIDES": "[" * 10_000},
        "detectors.overrides",
    ),
    (
        "env aliased section not JSON",
        b"",
        {"DRIFTD_SCHEMA__SEGMENT_BY": "a,b"},
        "schema.segment_by",
    ),
    ("env bad integer", b"", {"DRIFTD_WINDOWS__SIZE_EVENTS": "9" * 5_000}, "windows.size_events"),
    # Silently ignored before: a typo in the section, and keys of a plain value.
    ("env unknown section", b"", {"DRIFTD_WINDOW__SIZE_EVENTS": "10"}, "window.size_events"),
    ("env keys of a plain value", b"", {"DRIFTD_MODEL__NAME": "x"}, "model.name"),
    (
        "env unknown beside a bad file",
        b"windows:\n  sise_events: 10\n",
        {"DRIFTD_WINDOWZ": "{}"},
        "windowz",
    ),
]


@pytest.mark.parametrize(
    ("text", "env", "key"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_bad_config_raises_naming_its_key(
    tmp_path: Path, text: bytes, env: dict[str, str], key: str
) -> None:
    """Each garbage config raises InvalidConfigError listing its key."""
    config = tmp_path / "driftd.yaml"
    config.write_bytes(text)
    result = outcome(config, env)
    assert isinstance(result, InvalidConfigError)
    assert key in result.keys, result


@pytest.mark.parametrize(
    ("text", "env", "key"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_check_config_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: bytes, env: dict[str, str], key: str
) -> None:
    """``driftd check-config`` on each garbage config exits 2 with the key on stderr."""
    config = tmp_path / "driftd.yaml"
    config.write_bytes(text)
    with environment(env):
        assert main(["check-config", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"driftd: config error: {key}: " in err
    assert "Traceback" not in err


def test_check_config_process_exits_2_without_a_traceback(tmp_path: Path) -> None:
    """The real process, given an integer section name and a bad env override, exits 2 cleanly."""
    config = tmp_path / "driftd.yaml"
    config.write_bytes(b"1: x\n_env_prefix: FOO_\n")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("DRIFTD_")}
    env["DRIFTD_KAFKA__TOPICS"] = "[oops"
    proc = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "check-config", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for key in ("1", "_env_prefix", "kafka.topics"):
        assert f"driftd: config error: {key}: " in proc.stderr


def test_schema_overrides_take_the_prefix(tmp_path: Path) -> None:
    """DRIFTD_SCHEMA__* overrides the schema section; an unprefixed SCHEMA variable is ignored."""
    config = tmp_path / "driftd.yaml"
    config.write_text("schema:\n  id: from_file\n")
    overridden = outcome(config, {"DRIFTD_SCHEMA__ID": "from_env"})
    assert isinstance(overridden, Settings)
    assert overridden.schema_.id == "from_env"
    with mock.patch.dict(os.environ, {"SCHEMA": "not json", "SCHEMA__ID": "stray"}):
        plain = outcome(config, {})
    assert isinstance(plain, Settings)
    assert plain.schema_.id == "from_file"


def test_pydantic_settings_options_in_yaml_change_nothing(tmp_path: Path) -> None:
    """A YAML key like ``_env_prefix`` is refused, so it cannot switch off DRIFTD_ overrides."""
    config = tmp_path / "driftd.yaml"
    config.write_text("_env_prefix: NOPE_\nwindows:\n  size_events: 10\n")
    result = outcome(config, {"DRIFTD_WINDOWS__SIZE_EVENTS": "20"})
    assert isinstance(result, InvalidConfigError)
    assert result.keys == ["_env_prefix"]
