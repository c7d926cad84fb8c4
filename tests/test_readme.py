"""The README's configuration examples are valid configs, and its demo walkthrough is true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_settings

README = Path(__file__).resolve().parents[1] / "README.md"


def _yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("index", range(len(_yaml_blocks())))
def test_readme_yaml_examples_load(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every YAML example in the README loads as a valid driftd config."""
    for name in ("PD_ROUTING_KEY", "SLACK_WEBHOOK_URL", "HOOK_KEY"):
        monkeypatch.setenv(name, "example-secret")
    path = tmp_path / "driftd.yaml"
    path.write_text(_yaml_blocks()[index], encoding="utf-8")
    load_settings(path)


def test_readme_has_yaml_examples() -> None:
    """The README carries the config examples the test above checks."""
    assert len(_yaml_blocks()) >= 2


def _demo_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## The demo\n")
    return text[start : text.index("\n## ", start + 1)]


@pytest.mark.slow
def test_readme_names_every_alert_the_demo_raises(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo section's alert keys are exactly a real demo run's, each one explained."""
    named = set(re.findall(r"`((?:north|south|west)/[^/`\s]+/[^/`\s]+)`", _demo_section()))
    assert main(["demo", "--rate", "0", "--port", "0"]) == 0
    out = capsys.readouterr().out
    fired = {
        line.split()[3].removeprefix("driftd/credit-risk/")
        for line in out.splitlines()
        if line.split()[2:3] == ["FIRING"]
    }
    assert fired, out[-2000:]
    assert named == fired
    assert "alerts that fired:" in out
    assert "unexpected" not in out
