"""README.md and docs/ stay true to the code: generated pages current, links, examples, metrics."""

from __future__ import annotations

import ast
import json
import os
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from monitor import config, config_docs
from monitor.config import LabelsConfig, SchemaConfig, Settings, load_settings
from monitor.engine.labels import events as label_events
from monitor.engine.labels.events import LabelDecoder
from monitor.ingest import decode
from monitor.ingest.decode import Decoder
from monitor.ingest.file_source import FileSource

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
MONITOR = ROOT / "monitor"

NOW = 1_748_779_200.0
"""2025-06-01T12:00:00Z: the wall clock the examples in docs/events.md are written for."""

SECRET_VARIABLES = ("PD_ROUTING_KEY", "SLACK_WEBHOOK_URL", "HOOK_KEY")
"""Environment variables the YAML examples name as secrets."""

FENCE = re.compile(
    r"^(?P<fence>```+|~~~+)(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S
)
SCHEMA_NOTE = re.compile(r"<!--\s*schema:\s*(?P<json>\{.*?\})\s*-->\s*$", re.S)


# ----------------------------------------------------------------------------- helpers


def _markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _blocks(path: Path) -> Iterator[tuple[str, str, str]]:
    """(language, body, the text before the block) of every fenced block in ``path``."""
    text = path.read_text(encoding="utf-8")
    for match in FENCE.finditer(text):
        language = match.group("info").strip().split(" ")[0].lower()
        yield language, match.group("body"), text[: match.start()]


def _prose(text: str) -> str:
    """``text`` without fenced blocks and inline code (where brackets are not links)."""
    text = FENCE.sub("", text)
    return re.sub(r"(`+)(?:(?!\1).)+?\1", "", text, flags=re.S)


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (repeated headings get ``-1``, ``-2`` ...)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = _slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def _links(path: Path) -> list[str]:
    """Targets of the inline and reference-style links and images in ``path``."""
    text = _prose(path.read_text(encoding="utf-8"))
    inline = re.findall(
        r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)", text
    )
    defined = re.findall(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", text, re.M)
    return [*inline, *defined]


def _events_of(document: Any) -> list[dict[str, Any]]:
    return document if isinstance(document, list) else [document]


def _at(event: dict[str, Any], path: str) -> Any:
    value: Any = event
    for part in path.split(".") if path else []:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _features(events: list[dict[str, Any]], schema: SchemaConfig) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature names, as a warm-up discovers them."""
    numeric: set[str] = set()
    categorical: set[str] = set(schema.categorical)
    for event in events:
        found = _at(event, schema.features)
        for name, value in (found if isinstance(found, dict) else {}).items():
            if isinstance(value, bool | str):
                categorical.add(name)
            elif isinstance(value, int | float):
                numeric.add(name)
    return sorted(numeric - categorical), sorted(categorical)


def _is_label_event(event: dict[str, Any], schema: SchemaConfig) -> bool:
    labels = LabelsConfig()
    return _at(event, schema.features) is None and _at(event, labels.label) is not None


def _event_examples() -> list[tuple[str, str, SchemaConfig]]:
    """(language, body, schema) of every ``json`` / ``jsonl`` block of docs/events.md."""
    out = []
    for language, body, before in _blocks(DOCS / "events.md"):
        if language not in ("json", "jsonl"):
            continue
        note = SCHEMA_NOTE.search(before)
        schema = SchemaConfig(**json.loads(note.group("json"))) if note else SchemaConfig()
        out.append((language, body, schema))
    return out


def _decode_accepted(raw: list[bytes], events: list[dict[str, Any]], schema: SchemaConfig) -> int:
    """Decode ``raw`` with the daemon's decoders; fail on any refusal; the events kept."""
    if all(_is_label_event(e, schema) for e in events):
        labels = LabelDecoder(LabelsConfig(enabled=True), schema).decode(raw, now=NOW)
        assert not labels.rejections, labels.rejections
        return len(labels)
    numeric, categorical = _features(events, schema)
    batch = Decoder(schema, numeric, categorical).decode(raw, now=NOW)
    assert not batch.rejections, batch.rejections
    # No value may have been dropped as invalid either (a decoder that counts them).
    assert not getattr(batch, "invalid", None), batch
    return len(batch)


def _metric_calls() -> Iterator[tuple[Path, str]]:
    """(file, name) of every metric family created in monitor/ with a literal name."""
    kinds = ("Counter", "Gauge", "Histogram", "Summary", "Info", "Enum", "MetricFamily")
    for path in sorted(MONITOR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            first = node.args[0]
            if (
                called.endswith(kinds)
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and first.value.startswith("driftd_")
            ):
                yield path, first.value


def _documented_metrics() -> set[str]:
    text = (DOCS / "metrics.md").read_text(encoding="utf-8")
    return set(re.findall(r"(?<![\w:])driftd_[a-z0-9_]*[a-z0-9]", text))


def _family(name: str, defined: set[str]) -> str:
    """The family a scraped series name belongs to (``_total``, ``_bucket`` ... removed)."""
    if name in defined:
        return name
    for suffix in ("_total", "_bucket", "_count", "_sum", "_created", "_info"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def _unwrap(kind: Any) -> Any:
    """``kind`` without ``Annotated`` metadata and without ``| None``."""
    while True:
        origin = get_origin(kind)
        if origin is Annotated:
            kind = get_args(kind)[0]
        elif origin in (Union, types.UnionType):
            rest = [a for a in get_args(kind) if a is not type(None)]
            if len(rest) != 1:
                return kind
            kind = rest[0]
        else:
            return kind


def _settings_keys() -> Iterator[tuple[str, str]]:
    """(parent path, key) of every key of ``Settings``, sections and list entries recursed."""

    def walk(model: type[BaseModel], parent: str) -> Iterator[tuple[str, str]]:
        for name, info in model.model_fields.items():
            key = info.alias or name
            yield parent, key
            path = f"{parent}.{key}" if parent else key
            kind = _unwrap(info.annotation)
            if get_origin(kind) is list:
                (item,) = get_args(kind)
                item = _unwrap(item)
                variants = get_args(item) if get_origin(item) in (Union, types.UnionType) else ()
                for variant in variants or (item,):
                    if isinstance(variant, type) and issubclass(variant, BaseModel):
                        yield from walk(variant, f"{path}[]")
            elif isinstance(kind, type) and issubclass(kind, BaseModel):
                yield from walk(kind, "Secrets" if kind is config.SecretRef else path)

    yield from walk(Settings, "")


def _regions(text: str) -> dict[str, str]:
    """Each heading's title -> its text, up to the next heading of the same or a higher level."""
    lines = text.splitlines()
    heads = [
        (i, len(m.group(1)), m.group(2).strip())
        for i, line in enumerate(lines)
        if (m := re.match(r"^(#{1,6})\s+(.*)$", line))
    ]
    out: dict[str, str] = {}
    for n, (start, level, title) in enumerate(heads):
        end = next((i for i, lv, _ in heads[n + 1 :] if lv <= level), len(lines))
        out[title] = out.get(title, "") + "\n".join(lines[start:end])
    return out


# ----------------------------------------------------------------------------- configuration


def test_configuration_page_is_current() -> None:
    """docs/configuration.md is what monitor.config_docs generates from monitor/config.py now."""
    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert page == config_docs.render(), (
        "docs/configuration.md is stale: run "
        "`.venv/bin/python -m monitor.config_docs > docs/configuration.md`"
    )


def test_configuration_check_command() -> None:
    """`python -m monitor.config_docs --check` passes on the committed page."""
    assert config_docs.main(["--check"]) == 0


def test_configuration_check_detects_a_stale_page(tmp_path: Path) -> None:
    """`--check` exits 1 when the page differs from the models (a key added, say)."""
    stale = tmp_path / "configuration.md"
    stale.write_text(config_docs.render().replace("`max_segments`", "`old_key`"), "utf-8")
    assert config_docs.main(["--check", "--path", str(stale)]) == 1


def test_configuration_page_lists_every_settings_key() -> None:
    """Every key of the Settings model appears in docs/configuration.md, under its section."""
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    regions = _regions(text)
    missing = []
    for parent, key in _settings_keys():
        scope = parent
        region = None
        while region is None:
            titles = [t for t in regions if t == scope or t.startswith(scope + " ")]
            if titles:
                region = "\n".join(regions[t] for t in titles)
            elif "." in scope:
                scope = scope.rsplit(".", 1)[0]
            else:
                region = regions.get("Top-level keys", "")
        if not re.search(rf"^\| `{re.escape(key)}` \|", region, re.M):
            missing.append(f"{parent}.{key}" if parent else key)
    assert not missing, f"keys not documented in docs/configuration.md: {missing}"


def test_attribute_docstrings_are_read_from_source() -> None:
    """The generator takes a key's description from the string literal after the field."""
    source = 'class A:\n    x: int = 1\n    """The x."""\n    y: int = 2\n'
    assert config_docs.attribute_docstrings(source) == {"A": {"x": "The x."}}


def test_configuration_page_masks_secrets() -> None:
    """No secret default appears in the page: secret keys show their type, not a value."""
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert "**********" not in text
    assert "[secret](#secrets)" in text


# ----------------------------------------------------------------------------- links


def test_readme_links_every_doc() -> None:
    """README.md's Documentation section links every page in docs/."""
    links = {target.split("#", 1)[0] for target in _links(README)}
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if f"docs/{p.name}" not in links]
    assert not missing, f"README.md does not link {missing}"


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_files_inside_the_repository(path: Path) -> None:
    """Every link in README.md and docs/*.md names an existing file (and heading) in the repo."""
    problems = []
    for target in _links(path):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
            problems.append(f"{target}: points outside the repository")
            continue
        file_part, _, anchor = target.partition("#")
        if file_part.startswith("/") or ".." in Path(file_part).parts:
            problems.append(f"{target}: must be relative and stay inside the repository")
            continue
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            problems.append(f"{target}: no heading with that anchor")
    assert not problems, f"{path.name}: {problems}"


# ----------------------------------------------------------------------------- events


def test_events_page_has_examples() -> None:
    """docs/events.md shows inference events, an array, a label event and a JSON Lines file."""
    examples = _event_examples()
    languages = [language for language, _, _ in examples]
    assert languages.count("json") >= 4 and "jsonl" in languages
    documents = [json.loads(body) for language, body, _ in examples if language == "json"]
    assert any(isinstance(d, list) for d in documents)
    assert any(isinstance(d, dict) and set(d) == {"id", "ts", "label"} for d in documents)


@pytest.mark.parametrize("index", range(len(_event_examples())))
def test_events_examples_are_accepted_by_the_decoder(index: int, tmp_path: Path) -> None:
    """Each JSON example of docs/events.md parses and the real decoder accepts every event."""
    language, body, schema = _event_examples()[index]
    if language == "json":
        events = _events_of(json.loads(body))
        kept = _decode_accepted([body.encode()], events, schema)
        assert kept == len(events)
        return
    path = tmp_path / "events.jsonl"
    path.write_text(body, encoding="utf-8")
    source = FileSource(path, batch_size=1_000)
    try:
        records = source.poll(0.0)
    finally:
        source.close()
    lines = [line for line in body.splitlines() if line.strip()]
    assert len(records) == len(lines)
    events = [e for line in lines for e in _events_of(json.loads(line))]
    kept = _decode_accepted([r.value for r in records], events, schema)
    assert kept == len(events)


def test_events_page_lists_every_refusal_reason() -> None:
    """Every reason the decoders refuse a message for (or drop a value for) has a row."""
    text = (DOCS / "events.md").read_text(encoding="utf-8")
    reasons = [
        *decode.REASONS,
        *label_events.LABEL_REASONS,
        *getattr(decode, "INVALID_REASONS", ()),
    ]
    missing = [r for r in reasons if not re.search(rf"^\| `{r}` \|", text, re.M)]
    assert not missing, f"docs/events.md does not explain: {missing}"


def _yaml_examples() -> list[tuple[str, str]]:
    return [
        (path.name, body)
        for path in sorted(DOCS.glob("*.md"))
        if path.name != "configuration.md"
        for language, body, _ in _blocks(path)
        if language in ("yaml", "yml")
    ]


@pytest.mark.parametrize("index", range(len(_yaml_examples())))
def test_docs_yaml_examples_load(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every YAML example in docs/ (but the generated reference) is a valid driftd config."""
    for name in list(os.environ):
        if name.upper().startswith("DRIFTD_"):
            monkeypatch.delenv(name)
    for name in SECRET_VARIABLES:
        monkeypatch.setenv(name, "example-secret")
    _, body = _yaml_examples()[index]
    path = tmp_path / "driftd.yaml"
    path.write_text(body, encoding="utf-8")
    load_settings(path)


# ----------------------------------------------------------------------------- metrics


def test_documented_metrics_exist() -> None:
    """Every driftd_ metric named in docs/metrics.md is created somewhere in monitor/."""
    defined = {name for _, name in _metric_calls()}
    source = "\n".join(
        p.read_text(encoding="utf-8") for p in MONITOR.rglob("*.py") if p.name != "config_docs.py"
    )
    unknown = sorted(
        name
        for name in _documented_metrics()
        if f'"{_family(name, defined)}"' not in source
        and f"'{_family(name, defined)}'" not in source
    )
    assert not unknown, f"docs/metrics.md names metrics monitor/ does not define: {unknown}"


def test_every_metric_is_documented() -> None:
    """Every metric family monitor/ creates (metrics.py, labels/metrics.py ...) is documented."""
    defined = {name for _, name in _metric_calls()}
    documented = {_family(name, defined) for name in _documented_metrics()}
    for required in ("monitor/emit/metrics.py", "monitor/emit/label_metrics.py"):
        assert any(path == ROOT / required for path, _ in _metric_calls()), required
    undocumented = sorted(defined - documented)
    assert not undocumented, f"metrics missing from docs/metrics.md: {undocumented}"
