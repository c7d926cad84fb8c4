"""The configuration reference, generated from the settings models in ``monitor.config``.

``python -m monitor.config_docs > docs/configuration.md`` writes the page;
``python -m monitor.config_docs --check`` exits 1 when ``docs/configuration.md`` is
not what the models give now (a key was added, a default or a docstring changed).

Everything is read at run time: the sections and their order from ``Settings``, each
key's type, constraints and default (``default_factory`` values included) from
pydantic's field information, and each key's description from the attribute
docstring written under it in ``monitor/config.py`` (the string literal after the
field), found by parsing that file with ``ast``: the models are the one home of both
the keys and their documentation. A key without such a docstring takes its
description from ``Field(description=...)``, else the page says that it has none yet.
Secret values are never printed.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import re
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from monitor import config

__all__ = [
    "DEFAULT_PATH",
    "attribute_docstrings",
    "main",
    "render",
    "settings_keys",
]

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
"""The page ``--check`` compares against."""

NO_DESCRIPTION = "*No description yet: add an attribute docstring in `monitor/config.py`.*"

_SECTIONS_LINK = {
    "reliability": "reliability.md",
    "alerts": "alerts.md",
    "events": "events.md",
    "metrics": "metrics.md",
}


# --------------------------------------------------------------------------- docstrings


def attribute_docstrings(source: str) -> dict[str, dict[str, str]]:
    """``{class name: {field: docstring}}`` of every string literal right after a field."""
    out: dict[str, dict[str, str]] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        docs: dict[str, str] = {}
        for stmt, after in zip(node.body, node.body[1:], strict=False):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[stmt.target.id] = inspect.cleandoc(after.value.value)
        out[node.name] = docs
    return out


def _markdown(text: str) -> str:
    """reStructuredText-ish docstring markup as Markdown, references kept inside the repo."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)
    text = text.replace("``", "`")
    text = re.sub(r"\bNone(?=[:,.)])", "null", text)

    def design(match: re.Match[str]) -> str:
        topic = match.group(1).strip().lower()
        page = _SECTIONS_LINK.get(topic)
        return f" (see [{page}]({page}))" if page else ""

    # DESIGN.md is not part of the repository; point at the page that covers the topic.
    return re.sub(
        r"\s*\(DESIGN\.md(?:,\s*([^)]*))?\)", lambda m: design(m) if m.group(1) else "", text
    )


def _one_line(text: str) -> str:
    return " ".join(_markdown(text).split())


def _paragraphs(text: str) -> list[str]:
    paragraphs = re.split(r"\n\s*\n", _markdown(text))
    return [_escape(" ".join(p.split())) for p in paragraphs if p.strip()]


def _class_doc(cls: type) -> str:
    doc = cls.__dict__.get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


# --------------------------------------------------------------------------- types


def _unwrap(annotation: Any) -> Any:
    """The annotation without ``Annotated`` metadata."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _union_args(annotation: Any) -> tuple[Any, ...] | None:
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return tuple(_unwrap(a) for a in get_args(annotation))
    return None


def _is_model(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel)


def _is_secret(annotation: Any) -> bool:
    secret_ref = getattr(config, "SecretRef", None)
    return secret_ref is not None and annotation is secret_ref


def _variants(annotation: Any) -> tuple[type[BaseModel], ...] | None:
    """The models of a union of several models (the sink types), else None."""
    args = _union_args(_unwrap(annotation))
    if args and len(args) > 1 and all(_is_model(a) for a in args):
        return tuple(args)
    return None


def _type_name(annotation: Any, models: Mapping[Any, str] | None = None) -> str:
    """A reader's name for a type; ``models`` names some section types (links)."""
    models = models or {}
    annotation = _unwrap(annotation)
    if annotation in models:
        return models[annotation]
    names: dict[Any, str] = {
        str: "string",
        int: "integer",
        float: "number",
        bool: "boolean",
        Path: "path",
        SecretStr: "secret string",
        type(None): "null",
    }
    if annotation in names:
        return names[annotation]
    if _is_secret(annotation):
        return "[secret](#secrets)"
    if get_origin(annotation) is Literal:
        values = get_args(annotation)
        listed = ", ".join(f"`{v}`" for v in values)
        return listed if len(values) == 1 else f"one of {listed}"
    args = _union_args(annotation)
    if args is not None:
        if _variants(annotation):
            return "sink"
        rest = [a for a in args if a is not type(None)]
        text = " or ".join(_type_name(a, models) for a in rest)
        return text + " or null" if len(rest) < len(args) else text
    origin = get_origin(annotation)
    if origin in (list, Sequence, tuple):
        (item, *_) = get_args(annotation) or (Any,)
        return f"list of {_plural(_type_name(item, models))}"
    if origin in (dict, Mapping):
        key, value = get_args(annotation) or (Any, Any)
        return f"map of {_type_name(key, models)} to {_type_name(value, models)}"
    if _is_model(annotation):
        return "section"
    if inspect.isclass(annotation) and issubclass(annotation, Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in annotation)
    return f"`{getattr(annotation, '__name__', str(annotation))}`"


def _plural(name: str) -> str:
    if name.startswith(("one of", "[", "`", "map of", "list of")) or " or " in name:
        return f"({name})" if " or " in name else name
    return name + "s"


def _constraints(info: FieldInfo) -> list[str]:
    out: list[str] = []
    symbols = (
        (annotated_types.Gt, "gt", ">"),
        (annotated_types.Ge, "ge", ">="),
        (annotated_types.Lt, "lt", "<"),
        (annotated_types.Le, "le", "<="),
    )
    for item in info.metadata:
        for kind, attribute, symbol in symbols:
            if isinstance(item, kind):
                out.append(f"`{symbol} {_value(getattr(item, attribute))}`")
        if isinstance(item, annotated_types.MinLen) and item.min_length > 0:
            out.append("not empty" if item.min_length == 1 else f"{item.min_length}+ items")
        if isinstance(item, annotated_types.MaxLen):
            out.append(f"at most {item.max_length} items")
        pattern = getattr(item, "pattern", None)
        if isinstance(pattern, str):
            out.append(f"matches `{pattern}`")
    return out


# --------------------------------------------------------------------------- values


def _plain(value: Any) -> Any:
    """JSON-safe data with every secret masked."""
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, BaseModel):
        return _dump(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def _dump(model: BaseModel) -> dict[str, Any]:
    """The keys of ``model`` that differ from their defaults (its ``type`` always)."""
    out: dict[str, Any] = {}
    fields = type(model).model_fields
    for name, info in fields.items():
        value = getattr(model, name)
        default = info.get_default(call_default_factory=True)
        if name == "type" or info.is_required() or value != default:
            out[info.alias or name] = _plain(value)
    return out


def _value(value: Any) -> str:
    return json.dumps(_plain(value), ensure_ascii=False)


_UNITS = ((86_400, "day"), (3_600, "hour"), (60, "minute"))


def _hint(name: str, value: Any) -> str:
    """A reading aid for big round numbers of bytes and seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return ""
    if name.endswith("_bytes") and value >= 1024**2 and value % 1024**2 == 0:
        return f" ({int(value) // 1024**2} MiB)"
    if name.endswith(("_seconds", "_s")) and value >= 60:
        for size, unit in _UNITS:
            if value % size == 0:
                count = int(value // size)
                return f" ({count} {unit}{'s' if count > 1 else ''})"
    return ""


# --------------------------------------------------------------------------- the page


@dataclass(frozen=True)
class _Key:
    """One documented key: its model, field name and dotted path."""

    model: type[BaseModel]
    name: str
    info: FieldInfo
    path: str


def _doc_of(model: type[BaseModel], name: str, docs: Mapping[str, Mapping[str, str]]) -> str:
    for cls in model.__mro__:
        text = docs.get(cls.__name__, {}).get(name)
        if text:
            return _one_line(text)
    info = model.model_fields[name]
    if info.description:
        return _one_line(info.description)
    return NO_DESCRIPTION


def _anchor(heading: str) -> str:
    """The id GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _escape(text: str) -> str:
    """``<`` outside code spans as ``&lt;``, so Markdown does not take it for HTML."""
    parts = text.split("`")
    return "`".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(parts))


def _cell(text: str) -> str:
    return _escape(text).replace("|", "\\|").replace("\n", " ")


def _methods_heading(path: str) -> str:
    return f"{path} methods"


def _env_name(path: str) -> str:
    cfg = config.Settings.model_config
    prefix = str(cfg.get("env_prefix") or "")
    delimiter = str(cfg.get("env_nested_delimiter") or "__")
    return prefix + delimiter.join(part.upper() for part in path.split("."))


class _Page:
    """Builds the Markdown page section by section."""

    def __init__(self) -> None:
        self.docs = attribute_docstrings(inspect.getsource(config))
        self.lines: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def text(self) -> str:
        return "\n".join(self.lines).rstrip() + "\n"

    # -- one table -------------------------------------------------------------

    def table(
        self,
        model: type[BaseModel],
        prefix: str,
        instance: BaseModel | None,
        skip: Sequence[str] = (),
        links: Mapping[str, str] | None = None,
        owner: str = "",
    ) -> None:
        links = links or {}
        models = {
            item: f"[method keys](#{_anchor(_methods_heading(prefix))})"
            for item in self.method_groups(model)
        }
        self.add("| key | type | default | description |", "|---|---|---|---|")
        for name, info in model.model_fields.items():
            if name in skip:
                continue
            key = info.alias or name
            kind = _type_name(info.annotation, models)
            limits = _constraints(info)
            if limits:
                kind += " (" + ", ".join(limits) + ")"
            default = self.default(info, name, instance, owner)
            description = _doc_of(model, name, self.docs)
            if name == "grafana_url" and hasattr(config, "LINK_FIELDS"):
                fields = ", ".join(f"`{{{f}}}`" for f in sorted(config.LINK_FIELDS))
                description += f" Placeholders: {fields}."
            if key in links:
                description += f" See [{links[key]}](#{_anchor(links[key])})."
            row = (f"`{key}`", kind, default, description)
            self.add("| " + " | ".join(_cell(c) for c in row) + " |")
        self.add("")

    def default(self, info: FieldInfo, name: str, instance: BaseModel | None, owner: str) -> str:
        if info.is_required():
            return "required"
        declared = info.get_default(call_default_factory=True)
        if isinstance(declared, BaseModel) and not isinstance(declared, config.SecretRef):
            return "see below"
        if isinstance(declared, list) and declared and isinstance(declared[0], BaseModel):
            return f"`{_value(declared)}`"
        text = f"`{_value(declared)}`{_hint(name, declared)}"
        if instance is not None:
            effective = getattr(instance, name)
            if effective != declared:
                shown = f"`{_value(effective)}`{_hint(name, effective)}"
                return f"{shown} when `{owner}` is left out, else {text}"
        return text

    # -- one section -----------------------------------------------------------

    def section(
        self,
        model: type[BaseModel],
        path: str,
        level: int,
        instance: BaseModel | None,
        intro: bool = True,
    ) -> None:
        if intro:
            for paragraph in _paragraphs(_class_doc(model)):
                self.add(paragraph, "")
        if "[]" not in path:
            example = next(iter(model.model_fields), None)
            if example is not None:
                self.add(
                    f"Environment: `{_env_name(path)}__<KEY>` (for example "
                    f"`{_env_name(path + '.' + example)}`).",
                    "",
                )
        groups = self.method_groups(model)
        grouped = [name for names in groups.values() for name in names]
        nested = list(self.nested(model, path))
        links = {k.info.alias or k.name: k.path for k in nested}
        self.table(model, path, instance, skip=grouped, links=links, owner=path)
        if grouped:
            heading = _methods_heading(path)
            self.add(f"The methods and their keys are in [{heading}](#{_anchor(heading)}).", "")
        for item, names in groups.items():
            self.methods(model, item, names, path, level + 1)
        for key in nested:
            self.subsection(key, level + 1, instance)

    def method_groups(self, model: type[BaseModel]) -> dict[type[BaseModel], list[str]]:
        """Fields sharing one section type (the detectors' methods): shown as a matrix."""
        seen: dict[type[BaseModel], list[str]] = {}
        for name, info in model.model_fields.items():
            kind = _unwrap(info.annotation)
            if _is_model(kind) and not _is_secret(kind):
                seen.setdefault(kind, []).append(name)
        return {k: v for k, v in seen.items() if len(v) > 1}

    def nested(self, model: type[BaseModel], path: str) -> Iterator[_Key]:
        """Keys shown in a subsection of their own: sections, lists of sections, sinks."""
        groups = {n for names in self.method_groups(model).values() for n in names}
        for name, info in model.model_fields.items():
            if name in groups:
                continue
            kind = _unwrap(info.annotation)
            key = info.alias or name
            if _is_model(kind) and not _is_secret(kind):
                yield _Key(model, name, info, f"{path}.{key}")
            elif get_origin(kind) is list:
                (item,) = get_args(kind)
                item = _unwrap(item)
                if _variants(item) or (_is_model(item) and not _is_secret(item)):
                    yield _Key(model, name, info, f"{path}.{key}[]")

    def subsection(self, key: _Key, level: int, parent: BaseModel | None) -> None:
        hashes = "#" * min(level, 6)
        self.add(f"{hashes} {key.path}", "")
        kind = _unwrap(key.info.annotation)
        if _is_model(kind):
            default = key.info.get_default(call_default_factory=True)
            if parent is not None:
                default = getattr(parent, key.name)
            instance = default if isinstance(default, BaseModel) else None
            self.section(kind, key.path, level, instance)
            return
        (item,) = get_args(kind)
        item = _unwrap(item)
        self.add(_doc_of(key.model, key.name, self.docs), "")
        self.add(
            "Given as a list in YAML (or as JSON in "
            f"`{_env_name(key.path.removesuffix('[]'))}`); each entry has these keys.",
            "",
        )
        variants = _variants(item)
        if not variants:
            self.section(item, key.path, level, None)
            return
        tag = "type"
        self.add(
            f"Each entry has a `{tag}` naming its kind: "
            + ", ".join(f"`{self.tag(v)}`" for v in variants)
            + ".",
            "",
        )
        for variant in variants:
            self.add(f"{'#' * min(level + 1, 6)} {key.path} with type: {self.tag(variant)}", "")
            self.section(variant, key.path, level + 1, None)

    @staticmethod
    def tag(variant: type[BaseModel]) -> str:
        info = variant.model_fields.get("type")
        if info is None:
            return variant.__name__
        return str(info.get_default())

    def methods(
        self, model: type[BaseModel], item: type[BaseModel], names: list[str], path: str, level: int
    ) -> None:
        self.add(f"{'#' * min(level, 6)} {_methods_heading(path)}", "")
        for paragraph in _paragraphs(_class_doc(item)):
            self.add(paragraph, "")
        calibrated = set(getattr(config, "CALIBRATED_METHODS", ()))
        keys = [model.model_fields[n].alias or n for n in names]
        if calibrated:
            listed = ", ".join(f"`{m}`" for m in keys if m in calibrated)
            self.add(
                f"The drift engine calibrates {listed}; the other methods always decide on "
                "their fixed `threshold` and `clear`.",
                "",
            )
        self.add(
            "A method given in part keeps its defaults for the other keys "
            f"(`psi: {{min_effect: 0}}`); environment: `{_env_name(path)}__PSI__MIN_EFFECT`.",
            "",
        )
        fields = list(item.model_fields)
        self.add(
            "| method | " + " | ".join(fields) + " | what it tests |",
            "|---" * (len(fields) + 2) + "|",
        )
        for name, key in zip(names, keys, strict=True):
            default = model.model_fields[name].get_default(call_default_factory=True)
            values = [f"`{_value(getattr(default, f))}`" for f in fields]
            what = _doc_of(model, name, self.docs)
            self.add("| " + " | ".join(_cell(c) for c in (f"`{key}`", *values, what)) + " |")
        self.add("", "The keys of every method:", "")
        self.add("| key | type | description |", "|---|---|---|")
        for name, info in item.model_fields.items():
            kind = _type_name(info.annotation)
            limits = _constraints(info)
            if limits:
                kind += " (" + ", ".join(limits) + ")"
            row = (f"`{info.alias or name}`", kind, _doc_of(item, name, self.docs))
            self.add("| " + " | ".join(_cell(c) for c in row) + " |")
        self.add("")


def _intro(page: _Page) -> None:
    cfg = config.Settings.model_config
    prefix = str(cfg.get("env_prefix") or "")
    delimiter = str(cfg.get("env_nested_delimiter") or "__")
    page.add(
        "# Configuration reference",
        "",
        "<!-- Generated from monitor/config.py by `python -m monitor.config_docs > "
        "docs/configuration.md`. Do not edit by hand: change the models or their "
        "attribute docstrings, then regenerate (tests/test_docs.py fails until you do). -->",
        "",
        "Every key driftd reads, section by section, with its type, default and meaning. "
        "This page is generated from the settings models in `monitor/config.py`, so it "
        "lists exactly what the daemon accepts.",
        "",
        "## Where settings come from",
        "",
        "1. The defaults listed on this page.",
        "2. A YAML file, given with `-c` (`driftd run -c driftd.yaml`). A section given in "
        "the file replaces that section's defaults key by key: keys it leaves out take "
        "the defaults in its table.",
        f"3. Environment variables starting with `{prefix}`, which override the file.",
        "",
        *(
            [
                f"`driftd run` needs at least one of the two, a file or `{prefix}` variables: "
                "the defaults alone name no real Kafka topic.",
                "",
            ]
            if hasattr(config, "env_settings_given")
            else []
        ),
        "An unknown key, a value of the wrong type or out of range, or an inconsistent "
        "combination stops the daemon at start with exit code 2 and a message naming the "
        "key (`driftd: config error: windows.size_events: ...`). `driftd check-config -c "
        "driftd.yaml` validates a file and prints the resulting settings with secrets "
        "masked.",
        "",
        "### Environment overrides",
        "",
        f"A variable's name is `{prefix}` followed by the key's path, with `{delimiter}` "
        "between the levels; names are not case-sensitive:",
        "",
        "```sh",
        f"{_env_name('windows.size_events')}=10000",
        f"{_env_name('kafka.group_id')}=driftd-fraud",
        f"{_env_name('detectors.psi.min_effect')}=0.02",
        f'{_env_name("kafka.topics")}=\'["inference", "inference-eu"]\'',
        f'{_env_name("schema.segment_by")}=\'["model_version", "features.country"]\'',
        f'{_env_name("metrics")}=\'{{"host": "0.0.0.0", "port": 9108}}\'',
        "```",
        "",
        "- A scalar is given as text (`10000`, `true`, `0.02`). Lists, maps and whole "
        "sections are given as JSON; a variable that is not valid JSON where JSON belongs "
        "stops the start and is named in the error.",
        "- An override changes only its own key: the other keys of the section keep "
        "their values from the file.",
        "- A list (topics, sinks, routes) is replaced as a whole; single entries cannot "
        "be addressed.",
        "- A variable cannot set a key to null; do that in the file.",
        *(
            [
                f"- A `{prefix}` variable that names no setting (a typo such as "
                f"`{prefix}WINDOW{delimiter}SIZE_EVENTS`) is an error too, with a "
                "suggestion; a variable that a secret's `env:` names is exempt."
            ]
            if hasattr(config, "unknown_env_settings")
            else []
        ),
        "",
        "### Secrets",
        "",
        "Keys typed *secret* (PagerDuty routing keys, Slack and webhook URLs, HMAC keys, "
        "the Alertmanager URL) take either a plain string, or a map with exactly one of:",
        "",
    )
    page.table(config.SecretRef, "", None)
    page.add(
        "```yaml",
        "routing_key: {env: PD_ROUTING_KEY}          # read from the environment",
        "url: {file: /run/secrets/slack-webhook}     # read from a file",
        "hmac_secret: not-a-good-idea-inline         # inline (same as {value: ...})",
        "```",
        "",
        "A secret is read, and checked to exist and be non-empty, when the configuration "
        "is loaded and again when the sink is built, so a rotated file takes effect at "
        "the next start. Secret values are masked in `check-config` output, logs and "
        "error messages; a file or variable is only ever named. "
        "`kafka.sasl_plain_password` is a plain secret string (inline, or through its "
        "environment variable), masked the same way.",
        "",
    )


def render() -> str:
    """The whole page, from the models as they are now."""
    page = _Page()
    _intro(page)
    settings = config.Settings
    defaults = {
        name: info.get_default(call_default_factory=True)
        for name, info in settings.model_fields.items()
    }
    page.add("## Top-level keys", "")
    page.add("| key | type | default | description |", "|---|---|---|---|")
    sections: list[tuple[str, str, type[BaseModel]]] = []
    for name, info in settings.model_fields.items():
        key = info.alias or name
        kind = _unwrap(info.annotation)
        if _is_model(kind):
            sections.append((name, key, kind))
            summary = _one_line(_class_doc(kind).split("\n\n")[0]) or _doc_of(
                settings, name, page.docs
            )
            row = (f"`{key}`", "section", f"[below](#{_anchor(key)})", summary)
        else:
            row = (
                f"`{key}`",
                _type_name(info.annotation),
                page.default(info, name, None, ""),
                _doc_of(settings, name, page.docs),
            )
        page.add("| " + " | ".join(_cell(c) for c in row) + " |")
    page.add("")
    for name, key, kind in sections:
        page.add(f"## {key}", "")
        instance = defaults[name]
        page.section(kind, key, 2, instance if isinstance(instance, BaseModel) else None)
    return page.text()


def settings_keys() -> list[str]:
    """Every dotted key of ``Settings`` (sections recursed, list entries as ``[]``)."""
    out: list[str] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, info in model.model_fields.items():
            key = f"{prefix}{info.alias or name}"
            out.append(key)
            kind = _unwrap(info.annotation)
            if _is_model(kind) and not _is_secret(kind):
                walk(kind, key + ".")
            elif get_origin(kind) is list:
                (item,) = get_args(kind)
                item = _unwrap(item)
                for variant in _variants(item) or ((item,) if _is_model(item) else ()):
                    if not _is_secret(variant):
                        walk(variant, key + "[].")

    walk(config.Settings, "")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Print the page, or with ``--check`` compare it with the file (exit 1 if stale)."""
    parser = argparse.ArgumentParser(
        prog="python -m monitor.config_docs",
        description="Generate the configuration reference from monitor/config.py.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the page on disk differs from what the models give now",
    )
    parser.add_argument(
        "--path", type=Path, default=DEFAULT_PATH, help="the page --check compares against"
    )
    args = parser.parse_args(argv)
    page = render()
    if not args.check:
        sys.stdout.write(page)
        return 0
    try:
        current = args.path.read_text(encoding="utf-8")
    except OSError as exc:
        sys.stderr.write(f"config_docs: cannot read {args.path}: {exc.strerror}\n")
        return 1
    if current != page:
        sys.stderr.write(
            f"config_docs: {args.path} is stale; regenerate it with "
            "`python -m monitor.config_docs > docs/configuration.md`\n"
        )
        return 1
    sys.stderr.write(f"config_docs: {args.path} is up to date\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
