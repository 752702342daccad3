"""Public data formats: CSV files and Hugging Face datasets.

A source is read into a :class:`Table` (its column names and its rows, each
with a ``where`` for messages), the table's format is detected from its column
names, and each row is mapped onto the JSONL field names (``id``, ``prompt``,
``category``, ``style``, ...). The per-set parsers in :mod:`seas_runtime.data`
then validate the mapped rows exactly as they validate JSONL rows, so every
source gives the same items and the same kind of error.

Formats, tried in this order (column names are case-sensitive):

* HarmBench behaviours: any of ``Behavior``, ``FunctionalCategory``,
  ``SemanticCategory``, ``ContextString``, ``BehaviorID``; ``Behavior`` is
  required. prompt = ``Behavior``, or ``ContextString + "\\n\\n---\\n\\n" +
  Behavior`` for a contextual behaviour; category = ``SemanticCategory``;
  style = "plain"; id = ``BehaviorID`` or ``harmbench-<row>``.
* AdvBench: ``goal``, or ``target`` without ``prompt``; ``goal`` is required.
  prompt = ``goal``; category "uncategorized"; style "plain"; id ``advbench-<row>``.
* XSTest: ``type`` with ``label`` or ``focus``, and no ``response``; ``prompt``
  and ``type`` are required. category = ``type``; style "benign" for safe rows,
  "plain" for unsafe ones; id = ``id`` or ``xstest-<row>``. Sets of harmless
  requests (benign, contrast) take only the rows labelled "safe"; sets of
  harmful requests (seeds, heldout, direct) only those labelled "unsafe".
  Without a ``label`` column (XSTest v1 files) a ``contrast_*`` type is unsafe
  and every other type safe, as in the XSTest paper.
* Generic: the set's own JSONL field names as columns (``prompt``, or
  ``question`` for knowledge); the set's required fields must be columns.

``<row>`` is the 1-based number of the data row (the header not counted).
HarmBench, AdvBench and XSTest hold prompts only, so they fill the prompt sets
(seeds, heldout, direct, contrast, benign), not helpful, knowledge or judge.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from seas_runtime.data import DataError, _str

PROMPT_SETS = ("seeds", "heldout", "direct", "contrast", "benign")
# Which XSTest rows a prompt set takes: harmless requests for the over-refusal
# sets, XSTest's unsafe contrast prompts for the sets of harmful requests.
XSTEST_LABELS = {"benign": "safe", "contrast": "safe", "seeds": "unsafe", "heldout": "unsafe", "direct": "unsafe"}
GENERIC_REQUIRED = {
    "helpful": ("prompt", "answer"),
    "knowledge": ("question", "choices", "answer"),
    "judge": ("prompt", "response", "label"),
}
GENERIC_OPTIONAL = {
    "helpful": ("id",),
    "knowledge": ("id", "subject", "false_context"),
    "judge": ("id", "kind"),
}
HARMBENCH_COLUMNS = ("Behavior", "FunctionalCategory", "SemanticCategory", "ContextString", "BehaviorID")
CONTEXT_SEPARATOR = "\n\n---\n\n"  # HarmBench puts the context before the behaviour
HF_SOURCE = re.compile(r"hf:(?P<id>[^:\s\[\]]+)(?::(?P<a>[^:\s\[\]]+(?:\[[^\]]*\])?))?(?::(?P<b>[^:\s\[\]]+(?:\[[^\]]*\])?))?")


@dataclass
class Table:
    """Rows read from a CSV file or a Hugging Face dataset, before any mapping."""

    source: str  # the file or hf: id, for messages
    columns: list[str]
    rows: list[tuple[str, int, dict]] = field(default_factory=list)  # (where, 1-based data row number, cells)


# --- reading ------------------------------------------------------------------------


def is_csv(path: Path) -> bool:
    """Whether ``path`` is read as CSV (by its suffix, case-insensitive)."""
    return path.suffix.lower() == ".csv"


def read_csv(path: Path) -> Table:
    """Read a UTF-8 CSV file (a BOM is allowed) whose first non-blank line is the header."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    table: Table | None = None
    line = 0
    try:
        for cells in reader:
            start, line = line + 1, reader.line_num  # a quoted cell may span lines: name the row's first
            if not any(cell.strip() for cell in cells):
                continue  # blank lines count for line numbers, as in JSONL
            if table is None:
                table = Table(str(path), _header(cells, f"{path}:{start}"))
                continue
            where = f"{path}:{start}"
            table.rows.append((where, len(table.rows) + 1, _cells(table.columns, cells, where)))
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: invalid CSV ({exc})") from None
    if table is None or not table.rows:
        raise DataError(f"{path}: no rows")
    return table


def _header(cells: list[str], where: str) -> list[str]:
    columns = [cell.strip() for cell in cells]
    for column in columns:
        if column and columns.count(column) > 1:
            raise DataError(f"{where}: column {column!r} appears more than once in the header")
    return columns


def _cells(columns: list[str], cells: list[str], where: str) -> dict:
    # Extra empty cells (a trailing comma) are harmless; extra text would be silently lost.
    if any(cell.strip() for cell in cells[len(columns):]):
        raise DataError(f"{where}: {len(cells)} cells but the header has {len(columns)} columns")
    # A short row lacks its last cells: they read as missing (None), as with csv.DictReader.
    return dict(zip(columns, cells + [None] * (len(columns) - len(cells))))


def parse_hf(source: str) -> tuple[str, str | None, str]:
    """Split ``hf:<dataset id>[:<split>]`` or ``hf:<dataset id>:<config>:<split>`` into (id, config, split).

    The split defaults to "train" and may be sliced (``train[:100]``).
    """
    match = HF_SOURCE.fullmatch(source)
    if not match:
        raise DataError(f"{source}: expected hf:<dataset id>[:<split>] or hf:<dataset id>:<config>:<split>")
    if match["b"]:
        return match["id"], match["a"], match["b"]
    return match["id"], None, match["a"] or "train"


def read_hf(source: str) -> Table:
    """Load a Hugging Face dataset split; any failure (offline, unknown id or split) is a DataError."""
    dataset_id, config, split = parse_hf(source)
    try:
        # Imported here: a heavy import that only hf: sources need.
        from datasets import load_dataset
    except ImportError:
        raise DataError(f"{source}: the 'datasets' package is needed to read Hugging Face datasets") from None
    try:
        dataset = load_dataset(dataset_id, config, split=split) if config else load_dataset(dataset_id, split=split)
        records = list(dataset)
        columns = list(getattr(dataset, "column_names", None) or [])
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, the user's fix is the same: the id or the network
        raise DataError(f"{source}: cannot load Hugging Face dataset {dataset_id!r} (offline, or no such dataset?): {_first_line(exc)}") from None
    table = Table(source, columns)
    for number, record in enumerate(records, start=1):
        where = f"{source} row {number}"
        if not isinstance(record, Mapping):
            raise DataError(f"{where}: each row must map column names to values")
        table.columns.extend(key for key in record if key not in table.columns)  # when the loader gave no column_names
        table.rows.append((where, number, dict(record)))
    if not table.rows:
        raise DataError(f"{source}: no rows")
    return table


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# --- mapping ------------------------------------------------------------------------


def _text(cells: dict, column: str) -> str:
    """An optional cell as stripped text; "" when absent or empty."""
    value = cells.get(column)
    return "" if value is None else str(value).strip()


def _harmbench(where: str, number: int, cells: dict) -> dict:
    behavior = _str(cells, "Behavior", where)
    context = _text(cells, "ContextString")
    return {
        "id": _text(cells, "BehaviorID") or f"harmbench-{number}",
        "prompt": f"{context}{CONTEXT_SEPARATOR}{behavior}" if context else behavior,
        "category": _text(cells, "SemanticCategory") or "uncategorized",
        "style": "plain",
    }


def _advbench(where: str, number: int, cells: dict) -> dict:
    return {"id": f"advbench-{number}", "prompt": _str(cells, "goal", where), "category": "uncategorized", "style": "plain"}


def _xstest(where: str, number: int, cells: dict) -> dict:
    kind = _str(cells, "type", where)
    if "label" in cells:  # every row has every column of its table (a short CSV row has None)
        label = cells["label"]
        if label not in ("safe", "unsafe"):
            raise DataError(f"{where}: field 'label' must be 'safe' or 'unsafe', not {label!r}")
    else:
        label = "unsafe" if kind.startswith("contrast_") else "safe"
    return {
        "id": _text(cells, "id") or f"xstest-{number}",
        "prompt": _str(cells, "prompt", where),
        "category": kind,
        "style": "benign" if label == "safe" else "plain",
        "label": label,  # kept for the per-set filter; PromptItem ignores it
    }


def _generic(name: str) -> Callable[[str, int, dict], dict]:
    def mapped(where: str, number: int, cells: dict) -> dict:
        # An empty cell means "not given" (so optional fields take their defaults),
        # except a judge row's response: an empty answer is a case a judge must handle.
        row = {key: value for key, value in cells.items() if value not in (None, "") or key == "response"}
        if name == "knowledge":
            row = _qa_cells(row, where)
        return row

    return mapped


def _qa_cells(row: dict, where: str) -> dict:
    """A CSV cell holds text only: ``choices`` is a JSON list, ``answer`` may be an index."""
    choices, answer = row.get("choices"), row.get("answer")
    if isinstance(choices, str):
        try:
            row["choices"] = json.loads(choices)
        except json.JSONDecodeError:
            raise DataError(f"{where}: field 'choices' must be a JSON list of strings, e.g. [\"Paris\", \"Lyon\"]") from None
    if isinstance(answer, str) and answer.strip().isdigit():
        row["answer"] = int(answer)
    return row


@dataclass(frozen=True)
class Format:
    """A detected source format: how to recognise its header and map its rows."""

    title: str
    columns: str  # for messages
    matches: Callable[[set], bool]
    required: tuple[str, ...]
    map: Callable[[str, int, dict], dict]


_FORMATS = (
    Format("HarmBench behaviours", "Behavior, SemanticCategory, ContextString, BehaviorID",
            lambda cols: bool(cols & set(HARMBENCH_COLUMNS)), ("Behavior",), _harmbench),
    Format("AdvBench", "goal, target",
            lambda cols: "goal" in cols or ("target" in cols and "prompt" not in cols), ("goal",), _advbench),
    Format("XSTest", "prompt, type, label",
            lambda cols: "type" in cols and bool(cols & {"label", "focus"}) and "response" not in cols, ("prompt", "type"), _xstest),
)


def _generic_columns(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The set's (required, optional) JSONL field names."""
    return GENERIC_REQUIRED.get(name, ("prompt",)), GENERIC_OPTIONAL.get(name, ("id", "category", "style"))


def detect(name: str, table: Table) -> Format:
    """The format of ``table`` for data set ``name``, from its column names; a DataError if none fits."""
    cols = set(table.columns)
    required, optional = _generic_columns(name)
    candidates = _FORMATS if name in PROMPT_SETS else ()
    for fmt in candidates:
        if fmt.matches(cols):
            _require(table, fmt.title, fmt.required)
            return fmt
    generic = f"the {name} set's own fields"
    if required[0] in cols:  # the key field: prompt, or question for knowledge
        _require(table, generic, required)
        return Format(generic, ", ".join(required), lambda _: True, required, _generic(name))
    known = [f"{fmt.title} ({fmt.columns})" for fmt in candidates]
    known.append(f"{generic} ({', '.join(required + optional)})")
    own = next((fmt.title for fmt in _FORMATS if fmt.matches(cols)), None)
    hint = f"; {own} holds prompts only, so it cannot fill the {name!r} set" if own else ""
    raise DataError(f"{table.source}: unknown columns ({', '.join(table.columns)}); expected {' or '.join(known)}{hint}")


def _require(table: Table, title: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"{table.source}: read as {title}, but it has no column {', '.join(map(repr, missing))}")


def to_rows(name: str, table: Table) -> list[tuple[str, dict]]:
    """(where, row) pairs with the JSONL field names of data set ``name``, ready for its parser.

    XSTest rows are filtered by label: see the module docstring.
    """
    fmt = detect(name, table)
    rows = [(where, fmt.map(where, number, cells)) for where, number, cells in table.rows]
    if fmt.map is _xstest:
        wanted = XSTEST_LABELS[name]
        rows = [(where, row) for where, row in rows if row["label"] == wanted]
        if not rows:
            raise DataError(f"no rows with label {wanted!r} in {table.source} (the {name!r} set takes only XSTest's {wanted} prompts)")
    return rows
