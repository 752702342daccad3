"""Reading a SafetyEvolution from YAML with one clear message per problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from seas_runtime.data import DataError, is_hf, load
from seas_runtime.data.formats import parse_hf
from seas_runtime.problems import validation_problems
from seas_runtime.settings import DataSpec

from .api import SafetyEvolution

DATA_FIELDS = tuple(DataSpec.model_fields)  # every data set a spec can point at a file


class SpecError(ValueError):
    """The spec is unusable; ``problems`` holds one line per problem, each naming its field path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


def parse_evolution(document: Any, source: str = "<spec>") -> SafetyEvolution:
    """Validate an already-parsed document."""
    if not isinstance(document, dict):
        raise SpecError(source, ["(top level): a SafetyEvolution must be a YAML mapping"])
    try:
        return SafetyEvolution.model_validate(document)
    except ValidationError as exc:
        raise SpecError(source, validation_problems(exc)) from None


def load_evolution(path: str | Path, check_data: bool = True) -> SafetyEvolution:
    """Read, parse and validate a SafetyEvolution YAML file.

    Relative data paths are resolved against the file's folder; with
    ``check_data`` every data file is opened and its rows validated.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(source, [f"cannot read file: {exc.strerror or exc}"]) from None
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(source, [f"(YAML) {where}{getattr(exc, 'problem', None) or exc}"]) from None
    document = pick_evolution(documents, source)
    base = Path(path).resolve().parent
    data_section = (document.get("spec") or {}).get("data") if isinstance(document.get("spec"), dict) else None
    if isinstance(data_section, dict):
        for name in DATA_FIELDS:
            value = data_section.get(name)
            if isinstance(value, str) and value and not is_hf(value) and not Path(value).is_absolute():
                data_section[name] = str(base / value)
    problems = data_problems(data_section) if check_data and isinstance(data_section, dict) else []
    try:
        evolution = parse_evolution(document, source)
    except SpecError as exc:
        raise SpecError(source, exc.problems + problems) from None
    if problems:
        raise SpecError(source, problems)
    return evolution


def pick_evolution(documents: list[Any], source: str) -> dict:
    """The one SafetyEvolution in a file that may also hold other objects (a kubectl bundle)."""
    if len(documents) == 1:
        if not isinstance(documents[0], dict):
            raise SpecError(source, ["(top level): a SafetyEvolution must be a YAML mapping"])
        return documents[0]
    found = [d for d in documents if isinstance(d, dict) and d.get("kind") == "SafetyEvolution"]
    if len(found) != 1:
        raise SpecError(source, [f"(top level): expected one SafetyEvolution document, found {len(found)} among {len(documents)} documents"])
    return found[0]


def data_problems(data_section: dict) -> list[str]:
    """One line per unreadable or malformed data file named in ``spec.data``."""
    problems = []
    for name in DATA_FIELDS:
        value = data_section.get(name)
        if not isinstance(value, str) or not value:
            continue
        try:
            # A hub id is checked for its syntax only: fetching it belongs to the stage that uses it.
            if is_hf(value):
                parse_hf(value)
            else:
                load(name, value)
        except DataError as exc:
            problems.append(f"spec.data.{name}: {exc}")
    return problems
