"""The documentation pages written from the sources of truth: parameters from template.yaml, models from the catalogue.

`make docs` runs ``python -m seedance_local.docs_pages`` before building the site; a test regenerates the pages in
memory and fails when the committed ones differ, so the docs cannot drift from the template or the catalogue. Each
generated part sits between two markers in an otherwise hand-written page:

    <!-- generated: parameters (python -m seedance_local.docs_pages) -->
    ...
    <!-- end generated: parameters -->

``python -m seedance_local.docs_pages --check`` only compares (exit status 1 and the stale pages named).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from seedance_local.stack_template import find_template, load_template

DOCS_DIR = find_template().parent / "docs"
CONFIGURATION_PAGE = DOCS_DIR / "configuration.md"
MODELS_PAGE = DOCS_DIR / "models.md"
_CATALOGUE_SOURCE = "layers/common/seedance_pipeline/rules/model_catalogue.py"
# Fields the models table shows in columns of their own; any other field a row carries goes to "more".
_MODEL_COLUMNS = ("id", "aliases", "modes", "max_reference_images", "durations", "resolutions", "audio", "note")
# Fields the second table ("what else each model takes") shows, and fields shown inside other cells.
_OPTION_COLUMNS = (
    "ratios",
    "audio_default",
    "draft",
    "flex",
    "camera_fixed_modes",
    "frames",
    "output_formats",
    "retired",
)
_HIDDEN_MODEL_FIELDS = {
    "text_only",
    "mode_resolutions",
    "volcengine_id",
    "byteplus_id",
    "model_picks_duration",
    "max_reference_videos",
    "max_reference_audio",
    "sources",
    *_OPTION_COLUMNS,
}


def _cell(text: Any) -> str:
    """One Markdown table cell: no line breaks, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(value: Any) -> str:
    text = str(value)
    return f"`{text}`" if text else '`""`'


def parameters_markdown(template: Mapping[str, Any]) -> str:
    """Every template parameter, in the groups the console shows (AWS::CloudFormation::Interface), then the rest."""
    parameters: Mapping[str, Mapping[str, Any]] = template.get("Parameters", {})
    interface = template.get("Metadata", {}).get("AWS::CloudFormation::Interface", {})
    groups: list[tuple[str, list[str]]] = [
        (str(group.get("Label", {}).get("default", "Parameters")), [str(p) for p in group.get("Parameters", [])])
        for group in interface.get("ParameterGroups", [])
    ]
    grouped = {name for _, names in groups for name in names}
    rest = [name for name in parameters if name not in grouped]
    if rest:
        groups.append(("Other parameters", rest))
    lines: list[str] = []
    for label, names in groups:
        lines += [f"### {label}", "", "| parameter | default | allowed | meaning |", "|---|---|---|---|"]
        for name in names:
            spec = parameters.get(name)
            if spec is None:
                continue
            lines.append(f"| `{name}` | {_default(spec)} | {_allowed(spec)} | {_cell(spec.get('Description', ''))} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _default(spec: Mapping[str, Any]) -> str:
    if spec.get("NoEcho"):
        return "— (NoEcho)"
    if "Default" not in spec:
        return "—"
    return _cell(_code(spec["Default"]))


def _allowed(spec: Mapping[str, Any]) -> str:
    if "AllowedValues" in spec:
        return _cell(", ".join(_code(v) for v in spec["AllowedValues"]))
    bounds = [f"{word} {spec[key]}" for key, word in (("MinValue", "≥"), ("MaxValue", "≤")) if key in spec]
    if bounds:
        return _cell(", ".join(bounds))
    if "ConstraintDescription" in spec:
        return _cell(spec["ConstraintDescription"])
    return {"String": "text", "Number": "a number"}.get(str(spec.get("Type", "")), _cell(spec.get("Type", "")))


def models_markdown(specs: Iterable[Any]) -> str:
    """The built-in models as two tables: what each takes and makes, then its options, whatever fields the catalogue
    gives each row (a field this generator does not know yet goes into the note)."""
    rows: list[dict[str, Any]] = [_as_dict(spec) for spec in specs]
    lines = [
        "| model | also accepted as | inputs | durations (s) | resolutions | audio | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        more = {k: v for k, v in row.items() if k not in _MODEL_COLUMNS and k not in _HIDDEN_MODEL_FIELDS and v}
        note = "; ".join(filter(None, [str(row.get("note") or ""), *(f"{k}: {_plain(v)}" for k, v in more.items())]))
        if row.get("text_only"):
            lines.append(
                f"| `{row.get('id')}` | {_other_names(row)} | text only: always refused | — | — | — | {_cell(note)} |"
            )
            continue
        lines.append(
            f"| `{row.get('id')}` | {_other_names(row)} | {_cell(_modes(row))} "
            f"| {_cell(_durations(row.get('durations'), picks=bool(row.get('model_picks_duration'))))} "
            f"| {_cell(_resolutions(row))} | {_audio(row)} | {_cell(note)} |"
        )
    options = [row for row in rows if not row.get("text_only") and any(k in row for k in _OPTION_COLUMNS)]
    if options:
        lines += [
            "",
            "| model | ratios | draft | flex tier | camera_fixed | frames | output | retired |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in options:
            lines.append(
                f"| `{row.get('id')}` | {_cell(', '.join(str(r) for r in row.get('ratios') or ()) or '—')} "
                f"| {_yes(row.get('draft'))} | {_yes(row.get('flex'))} "
                f"| {_cell(_mode_list(row.get('camera_fixed_modes')) or 'no')} | {_yes(row.get('frames'))} "
                f"| {_cell(', '.join(str(f) for f in row.get('output_formats') or ()) or '—')} "
                f"| {_cell(_retirements(row.get('retired')))} |"
            )
    return "\n".join(lines) + "\n"


def _other_names(row: Mapping[str, Any]) -> str:
    """Every other spelling a model is accepted under: its aliases and each platform's id."""
    names = [f"`{alias}`" for alias in row.get("aliases") or ()]
    for platform, label in (("volcengine", "Volcengine"), ("byteplus", "BytePlus")):
        spelled = row.get(f"{platform}_id")
        if spelled and spelled != row.get("id") and f"`{spelled}`" not in names:
            names.append(f"`{spelled}` ({label})")
    return ", ".join(names) or "—"


def _audio(row: Mapping[str, Any]) -> str:
    if not row.get("audio"):
        return "no"
    return "yes (on by default)" if row.get("audio_default") else "yes"


def _yes(value: Any) -> str:
    return "yes" if value else "no"


def _mode_list(modes: Any) -> str:
    names = sorted((str(getattr(m, "value", m)) for m in modes or ()), key=lambda m: _MODE_ORDER.get(m, 9))
    return ", ".join({"first_frame": "first frame", "first_and_last_frame": "first + last"}.get(m, m) for m in names)


def _retirements(retired: Any) -> str:
    phrases = []
    for item in retired or ():
        entry = _as_dict(item)
        phrases.append(f"{entry.get('platform')} from {entry.get('on')}: use `{entry.get('replacement')}`")
    return "; ".join(phrases) or "—"


def _as_dict(spec: Any) -> dict[str, Any]:
    if isinstance(spec, Mapping):
        return dict(spec)
    dump = getattr(spec, "model_dump", None)
    if callable(dump):
        return dict(dump())
    return dict(vars(spec))


def _plain(value: Any) -> str:
    if isinstance(value, (set, frozenset, tuple, list)):
        return ", ".join(sorted(str(getattr(v, "value", v)) for v in value))
    if isinstance(value, Mapping):
        return "; ".join(f"{getattr(k, 'value', k)}: {_plain(v)}" for k, v in value.items())
    return str(getattr(value, "value", value))


def _names(aliases: Any) -> str:
    return ", ".join(f"`{a}`" for a in aliases or ()) or "—"


_MODE_ORDER = {"first_frame": 0, "first_and_last_frame": 1, "reference_images": 2}


def _modes(row: Mapping[str, Any]) -> str:
    modes = sorted((str(getattr(m, "value", m)) for m in row.get("modes") or ()), key=lambda m: _MODE_ORDER.get(m, 9))
    phrases = []
    for mode in modes:
        if mode == "reference_images":
            phrases.append(f"1-{row.get('max_reference_images', '?')} reference images")
            if row.get("max_reference_videos"):
                phrases.append(f"with up to {row['max_reference_videos']} reference videos")
            if row.get("max_reference_audio"):
                phrases.append(f"with up to {row['max_reference_audio']} audio clips (never audio alone)")
        else:
            phrases.append({"first_frame": "first frame", "first_and_last_frame": "first + last"}.get(mode, mode))
    return "; ".join(phrases) or "—"


def _durations(durations: Any, *, picks: bool = False) -> str:
    values = sorted(int(d) for d in durations or ())
    if not values:
        return "—"
    if values == list(range(values[0], values[-1] + 1)) and len(values) > 2:
        text = f"{values[0]}-{values[-1]}"
    else:
        text = ", ".join(str(v) for v in values)
    return f"{text} or -1 (the model picks)" if picks else text


def _resolutions(row: Mapping[str, Any]) -> str:
    text = ", ".join(str(r) for r in row.get("resolutions") or ())
    narrower = row.get("mode_resolutions") or {}
    for mode, resolutions in narrower.items():
        text += f"; {', '.join(str(r) for r in resolutions)} with {str(getattr(mode, 'value', mode)).replace('_', ' ')}"
    return text or "—"


def built_in_models() -> tuple[Any, ...]:
    """The catalogue's built-in rows, through its public names (BUILT_IN_CATALOGUE, else BUILT_IN_MODELS)."""
    from seedance_pipeline.rules import model_catalogue

    catalogue = getattr(model_catalogue, "BUILT_IN_CATALOGUE", None)
    if catalogue is not None:
        return tuple(catalogue)
    return tuple(model_catalogue.BUILT_IN_MODELS)


def _marked(page: str, name: str, body: str) -> str:
    start = f"<!-- generated: {name} (python -m seedance_local.docs_pages) -->"
    end = f"<!-- end generated: {name} -->"
    pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(end), flags=re.DOTALL)
    if not pattern.search(page):
        raise ValueError(f"the page has no markers for the generated part {name!r}: add {start} ... {end}")
    return pattern.sub(lambda _: f"{start}\n{body}{end}", page, count=1)


def generated_pages() -> dict[Path, str]:
    """Each generated page as it should read now (the committed text with its generated parts rewritten)."""
    template = load_template()
    configuration = _marked(CONFIGURATION_PAGE.read_text(encoding="utf-8"), "parameters", parameters_markdown(template))
    models = _marked(MODELS_PAGE.read_text(encoding="utf-8"), "models", models_markdown(built_in_models()))
    return {CONFIGURATION_PAGE: configuration, MODELS_PAGE: models}


def stale_pages() -> list[Path]:
    return [path for path, text in generated_pages().items() if path.read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when a page is out of date")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages()
        for path in stale:
            print(f"{path}: out of date with template.yaml or {_CATALOGUE_SOURCE}", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated_pages().items():
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
