"""The shipped data sets and user-supplied replacements."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from seas_runtime import data
from seas_runtime.data import DataError, HelpfulItem, PromptItem, QAItem, load, stratified_subset

EIGHT_CATEGORIES = {"violence", "weapons", "cybercrime", "fraud", "drugs", "hate", "privacy", "self_harm"}
FIVE_STYLES = {"role_play", "goal_hijacking", "adversarial_prefix", "token_manipulation", "session_completion"}


def write(tmp_path: Path, lines: list, name: str = "set.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines), encoding="utf-8")
    return path


# --- shipped sets ---------------------------------------------------------------


def test_seeds_are_8_categories_by_5_styles_by_2():
    seeds = load("seeds")
    assert len(seeds) == 80
    assert all(isinstance(s, PromptItem) for s in seeds)
    cells = Counter((s.category, s.style) for s in seeds)
    assert {c for c, _ in cells} == EIGHT_CATEGORIES
    assert {s for _, s in cells} == FIVE_STYLES
    assert len(cells) == 40 and set(cells.values()) == {2}
    assert len({s.id for s in seeds}) == 80


@pytest.mark.parametrize("name", ["seeds", "direct", "heldout", "contrast", "benign", "helpful", "knowledge", "judge"])
def test_every_shipped_set_loads_through_the_loader(name):
    items = load(name)
    assert items and len({i.id for i in items}) == len(items)  # sizes and cells: test_shipped_data.py


def test_helpful_set_is_disjoint_from_benign():
    helpful = load("helpful")
    assert len(helpful) == 40
    assert all(isinstance(h, HelpfulItem) and h.answer for h in helpful)
    assert not {h.prompt for h in helpful} & {b.prompt for b in load("benign")}


def test_knowledge_set():
    qa = load("knowledge")
    assert len(qa) >= 100
    assert all(isinstance(q, QAItem) and len(q.choices) == 4 for q in qa)
    assert all(len(set(q.choices)) == 4 for q in qa)
    answers = Counter(q.answer for q in qa)
    assert set(answers) == {0, 1, 2, 3}
    assert max(answers.values()) - min(answers.values()) <= len(qa) // 10  # no position bias to exploit
    # the 2409.19476 "false context" probe needs a misleading sentence for every question
    assert all(q.false_context.strip() for q in qa)
    assert len({q.question for q in qa}) == len(qa)


# --- user files -----------------------------------------------------------------


@pytest.mark.parametrize("answer, index", [(2, 2), ("C", 2), ("c", 2), ("Lyon", 1), ("A", 0)])
def test_qa_answer_as_index_letter_or_text(tmp_path, answer, index):
    path = write(tmp_path, [{"question": "Capital of France?", "choices": ["Paris", "Lyon", "Nice", "Metz"], "answer": answer}])
    (item,) = load("knowledge", str(path))
    assert item.answer == index
    assert item.letter == "ABCD"[index]


@pytest.mark.parametrize(
    "row, needle",
    [
        ({"question": "Q?", "choices": ["a", "b"], "answer": 2}, "answer"),
        ({"question": "Q?", "choices": ["a", "b"], "answer": -1}, "answer"),
        ({"question": "Q?", "choices": ["a", "b"], "answer": True}, "answer"),
        ({"question": "Q?", "choices": ["a", "b"], "answer": "E"}, "answer"),
        ({"question": "Q?", "choices": ["a", "b"], "answer": "zzz"}, "answer"),
        ({"question": "Q?", "choices": ["a"], "answer": 0}, "choices"),
        ({"question": "Q?", "choices": "a,b", "answer": 0}, "choices"),
        ({"question": "Q?", "choices": ["a", ""], "answer": 0}, "choices"),
        ({"question": "", "choices": ["a", "b"], "answer": 0}, "question"),
        ({"choices": ["a", "b"], "answer": 0}, "question"),
    ],
)
def test_bad_qa_rows_name_file_and_line(tmp_path, row, needle):
    good = {"question": "ok?", "choices": ["a", "b"], "answer": 0}
    path = write(tmp_path, [good, "", row])
    with pytest.raises(DataError) as error:
        load("knowledge", str(path))
    assert f"{path}:3" in str(error.value)  # blank lines still count
    assert needle in str(error.value)


@pytest.mark.parametrize(
    "line, needle",
    [
        ('{"prompt": "p", "category": "fraud"', "invalid JSON"),
        ('["a list"]', "JSON object"),
        ('{"prompt": ""}', "prompt"),
        ('{"prompt": 5}', "prompt"),
        ('{"category": "fraud"}', "prompt"),
    ],
)
def test_bad_prompt_rows_name_file_and_line(tmp_path, line, needle):
    path = write(tmp_path, ['{"prompt": "fine"}', line])
    with pytest.raises(DataError) as error:
        load("seeds", str(path))
    assert f"{path}:2" in str(error.value)
    assert needle in str(error.value)


def test_duplicate_ids_are_rejected(tmp_path):
    # Attack records are keyed by seed id (r<round>-<seed id>-p<k>) and red-team
    # pairs are grouped by it: two seeds sharing an id would be paired with each other.
    path = write(tmp_path, [
        {"id": "s1", "prompt": "first", "category": "fraud", "style": "role_play"},
        {"id": "s1", "prompt": "second", "category": "hate", "style": "goal_hijacking"},
    ])
    with pytest.raises(DataError) as error:
        load("seeds", str(path))
    assert f"{path}:2" in str(error.value)
    assert "s1" in str(error.value)


def test_helpful_rows_need_an_answer(tmp_path):
    path = write(tmp_path, [{"prompt": "How?"}])
    with pytest.raises(DataError, match=r":1: field 'answer'"):
        load("helpful", str(path))


def test_missing_empty_and_binary_files(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        load("seeds", str(tmp_path / "missing.jsonl"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no rows"):
        load("seeds", str(empty))
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(DataError, match="UTF-8"):
        load("seeds", str(binary))


def test_prompt_rows_default_ids_category_and_style(tmp_path):
    path = write(tmp_path, [{"prompt": "  one  "}, {"prompt": "two", "id": "custom", "category": "fraud", "style": "role_play"}])
    first, second = load("heldout", str(path))
    assert first.prompt == "one"
    assert first.category == "uncategorized" and first.style == "plain"
    assert first.id != second.id
    assert second == PromptItem("custom", "two", "fraud", "role_play")


def test_resolve_prefers_the_given_path(tmp_path):
    assert data.resolve("seeds", None).name == "seeds.jsonl"
    assert data.resolve("seeds", str(tmp_path / "x.jsonl")) == tmp_path / "x.jsonl"


# --- stratified subsets -----------------------------------------------------------


@pytest.mark.parametrize("limit", [40, 24, 8])
def test_stratified_subset_spreads_over_cells(limit):
    seeds = load("seeds")
    picked = stratified_subset(seeds, limit, seed=3)
    assert len(picked) == limit
    assert len({p.id for p in picked}) == limit
    cells = Counter((p.category, p.style) for p in picked)
    assert max(cells.values()) == 1  # no cell twice before every cell once
    if limit == 40:
        assert len(cells) == 40  # every cell covered


@pytest.mark.parametrize("limit", [8, 13, 24])
def test_stratified_subset_below_the_cell_count_spreads_over_categories_and_styles(limit):
    # examples/evolution.yaml uses maxSeeds: 24 ("3 per risk category, spread over
    # the 5 attack styles"): no category may be left out of the attacks.
    seeds = load("seeds")
    for seed in (0, 1, 2):
        picked = stratified_subset(seeds, limit, seed=seed)
        categories = Counter(p.category for p in picked)
        styles = Counter(p.style for p in picked)
        assert set(categories) == EIGHT_CATEGORIES, categories
        assert max(categories.values()) - min(categories.values()) <= 1, categories
        assert set(styles) == FIVE_STYLES, styles


def test_stratified_subset_above_the_cell_count_takes_each_cell_at_least_once():
    picked = stratified_subset(load("seeds"), 50, seed=0)
    assert len(picked) == 50
    cells = Counter((p.category, p.style) for p in picked)
    assert len(cells) == 40 and set(cells.values()) <= {1, 2}


def test_stratified_subset_is_deterministic_and_varies_with_seed():
    seeds = load("seeds")
    assert stratified_subset(seeds, 40, seed=1) == stratified_subset(seeds, 40, seed=1)
    assert stratified_subset(seeds, 40, seed=1) != stratified_subset(seeds, 40, seed=2)


def test_stratified_subset_without_limit_is_everything():
    seeds = load("seeds")
    assert stratified_subset(seeds, None, seed=0) == seeds
    assert stratified_subset(seeds, 1000, seed=0) == seeds
