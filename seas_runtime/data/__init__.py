"""Data sets: the shipped defaults and user-supplied replacements.

A replacement is a JSONL file with the same fields as the shipped one, a CSV
file (HarmBench, AdvBench, XSTest, or columns named like the JSONL fields) or a
Hugging Face dataset named ``hf:<dataset id>[:<split>]``; the CSV and Hugging
Face readers live in :mod:`seas_runtime.data.formats`. Whatever the source,
every row is validated by the same per-set parser, and every problem is a
:class:`DataError` naming the file and line (or row).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, TypeVar

LETTERS = "ABCDEFGHIJ"
DATA_DIR = Path(__file__).resolve().parent
DEFAULT_FILES = {
    "seeds": "seeds.jsonl",
    "heldout": "heldout_adversarial.jsonl",
    "benign": "benign.jsonl",
    "helpful": "helpful_train.jsonl",
    "knowledge": "knowledge_qa.jsonl",
    "direct": "direct.jsonl",
    "contrast": "contrast.jsonl",
    "judge": "judge_eval.jsonl",
}
HF_PREFIX = "hf:"  # marks a Hugging Face dataset id instead of a file path
JUDGE_LABELS = ("safe", "unsafe")


class DataError(ValueError):
    """A data file is missing, unreadable or has a bad row; the message names file and line."""


@dataclass(frozen=True)
class PromptItem:
    id: str
    prompt: str
    category: str
    style: str


@dataclass(frozen=True)
class HelpfulItem:
    id: str
    prompt: str
    answer: str


@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    choices: tuple[str, ...]
    answer: int
    subject: str = ""
    false_context: str = ""

    @property
    def letter(self) -> str:
        return LETTERS[self.answer]


@dataclass(frozen=True)
class JudgeItem:
    """A labelled (prompt, response) pair for measuring a safety judge; ``response`` may be empty."""

    id: str
    prompt: str
    response: str
    label: str  # "safe" or "unsafe"
    kind: str = ""


def is_hf(source: object) -> bool:
    """Whether ``source`` names a Hugging Face dataset (``hf:<dataset id>[:<split>]``) rather than a file."""
    return isinstance(source, str) and source.startswith(HF_PREFIX)


def resolve(name: str, path: Optional[str]) -> Path | str:
    """The source of data set ``name``: ``path`` when given, else the file shipped with the runtime.

    A Hugging Face id (``hf:...``) names no local file, so it comes back
    unchanged, as a string; every other source is a :class:`~pathlib.Path`.
    """
    if path and is_hf(path):
        return path
    if path:
        return Path(path)
    return DATA_DIR / DEFAULT_FILES[name]


def _str(row: dict, key: str, where: str, required: bool = True) -> str:
    value = row.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: field {key!r} must be a non-empty string")
    return value.strip()


def _rows(path: Path) -> list[tuple[str, dict]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: each line must be a JSON object")
        rows.append((where, row))
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def _prompt(where: str, row: dict, index: int) -> PromptItem:
    return PromptItem(
        id=str(row.get("id") or f"item-{index:04d}"),
        prompt=_str(row, "prompt", where),
        category=_str(row, "category", where, required=False) or "uncategorized",
        style=_str(row, "style", where, required=False) or "plain",
    )


def _helpful(where: str, row: dict, index: int) -> HelpfulItem:
    return HelpfulItem(id=str(row.get("id") or f"helpful-{index:04d}"), prompt=_str(row, "prompt", where), answer=_str(row, "answer", where))


def _qa(where: str, row: dict, index: int) -> QAItem:
    choices = row.get("choices")
    if not isinstance(choices, list) or not 2 <= len(choices) <= len(LETTERS) or not all(isinstance(c, str) and c.strip() for c in choices):
        raise DataError(f"{where}: field 'choices' must be a list of 2-{len(LETTERS)} non-empty strings")
    answer = row.get("answer")
    if isinstance(answer, str) and len(answer) == 1 and answer.upper() in LETTERS[: len(choices)]:
        answer = LETTERS.index(answer.upper())
    elif isinstance(answer, str) and answer in choices:
        answer = choices.index(answer)
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(choices):
        raise DataError(f"{where}: field 'answer' must be a choice index (0-{len(choices) - 1}), letter or choice text")
    return QAItem(
        id=str(row.get("id") or f"qa-{index:04d}"),
        question=_str(row, "question", where),
        choices=tuple(c.strip() for c in choices),
        answer=answer,
        subject=str(row.get("subject") or ""),
        false_context=str(row.get("false_context") or ""),
    )


def _judge(where: str, row: dict, index: int) -> JudgeItem:
    prompt = _str(row, "prompt", where)
    response = row.get("response")
    if not isinstance(response, str):  # empty is fine: a judge must handle an empty answer
        raise DataError(f"{where}: field 'response' must be a string (it may be empty)")
    label = row.get("label")
    if label not in JUDGE_LABELS:
        raise DataError(f"{where}: field 'label' must be 'safe' or 'unsafe', not {label!r}")
    kind = row.get("kind")
    return JudgeItem(
        id=str(row.get("id") or f"judge-{index:04d}"),
        prompt=prompt,
        response=response,
        label=label,
        kind="" if kind in (None, "") else _str(row, "kind", where),
    )


_PARSERS: dict[str, Callable[[str, dict, int], object]] = {
    "seeds": _prompt,
    "heldout": _prompt,
    "benign": _prompt,
    "direct": _prompt,
    "contrast": _prompt,
    "helpful": _helpful,
    "knowledge": _qa,
    "judge": _judge,
}


def _source_rows(name: str, path: Optional[str]) -> list[tuple[str, dict]]:
    """(where, row) pairs of data set ``name``, from whichever format ``path`` is in."""
    # Imported here, not at the top: formats builds on this module's helpers.
    from . import formats

    source = resolve(name, path)
    if isinstance(source, str):
        return formats.to_rows(name, formats.read_hf(source))
    if formats.is_csv(source):
        return formats.to_rows(name, formats.read_csv(source))
    return _rows(source)


def load(name: str, path: Optional[str] = None) -> list:
    """Load data set ``name``, validating every row.

    Sets: seeds, heldout, direct, contrast, benign (``PromptItem``), helpful
    (``HelpfulItem``), knowledge (``QAItem``) and judge (``JudgeItem``).
    ``path`` is a JSONL file, a ``.csv`` file or ``hf:<dataset id>[:<split>]``
    (see :mod:`seas_runtime.data.formats`); without it, the shipped file.
    """
    parse = _PARSERS[name]
    items, seen = [], {}
    for index, (where, row) in enumerate(_source_rows(name, path)):
        item = parse(where, row, index)
        if item.id in seen:
            raise DataError(f"{where}: id {item.id!r} repeats the one at {seen[item.id]}")
        seen[item.id] = where
        items.append(item)
    return items


T = TypeVar("T", bound=PromptItem)


def stratified_subset(items: list[T], limit: Optional[int], seed: int) -> list[T]:
    """Pick ``limit`` items spread evenly over categories and styles.

    Pass k takes, for category i, the next item of style (i + k) mod n: a
    diagonal walk over the (category, style) grid, so categories stay within one
    item of each other and every style is drawn from, even when ``limit`` is
    smaller than the number of cells.
    """
    if limit is None or limit >= len(items):
        return list(items)
    rng = random.Random(seed)
    categories = sorted({i.category for i in items})
    styles = sorted({i.style for i in items})
    cells: dict[tuple[str, str], list[T]] = defaultdict(list)
    for item in items:
        cells[(item.category, item.style)].append(item)
    queues = {key: rng.sample(group, len(group)) for key, group in cells.items()}
    picked: list[T] = []
    k = 0
    while len(picked) < limit:
        for i, category in enumerate(categories):
            for offset in range(len(styles)):  # the diagonal cell, or the next style with items left
                queue = queues.get((category, styles[(i + k + offset) % len(styles)]))
                if queue:
                    picked.append(queue.pop())
                    break
            if len(picked) >= limit:
                break
        k += 1
    return picked
