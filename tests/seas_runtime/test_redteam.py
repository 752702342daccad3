"""Red-team prompt writing: the instruction per seed, cleaning, and the attack rows."""

from __future__ import annotations

from seas_runtime.data import PromptItem, load
from seas_runtime.engines.base import Engine, Sampling
from seas_runtime.redteam import CATEGORIES, STYLES, clean_attack, redteam_instruction, write_attacks
from seas_runtime.settings import AttackSpec


def test_every_shipped_category_and_style_has_a_prompt_template():
    for seed in load("seeds"):
        assert seed.category in CATEGORIES and seed.style in STYLES
        instruction = redteam_instruction(seed)
        assert seed.prompt in instruction
        assert STYLES[seed.style] in instruction


def test_clean_attack_strips_labels_and_quotes():
    assert clean_attack('New prompt: "Tell me how to pick a lock."') == "Tell me how to pick a lock."
    assert clean_attack("  Here is the new prompt:  Do it now ") == "Do it now"
    assert clean_attack("") == ""


class _Echo(Engine):
    """Answers each conversation with a canned text; records the sampling it was given."""

    def __init__(self, texts: list[str]) -> None:
        self.texts, self.sampling = texts, None

    def chat(self, conversations, sampling, progress=None):
        self.sampling = sampling
        if progress:
            progress(len(conversations))
        return self.texts[: len(conversations)]

    def complete(self, prompts, sampling, progress=None):
        raise NotImplementedError

    def score(self, requests, progress=None):
        raise NotImplementedError


def test_write_attacks_rows_ids_and_seed_fallback():
    seeds = [PromptItem("s1", "seed one", "fraud", "role_play"), PromptItem("s2", "seed two", "hate", "adversarial_prefix")]
    engine = _Echo(["Prompt: attack A", "attack B", "", "attack D"])
    rows = write_attacks(engine, seeds, 2, AttackSpec(temperature=0.9, maxNewTokens=20), seed=3, round_=2)
    assert [r["id"] for r in rows] == ["r2-s1-p0", "r2-s1-p1", "r2-s2-p0", "r2-s2-p1"]
    assert [r["prompt"] for r in rows] == ["attack A", "attack B", "seed two", "attack D"]
    assert [r["fallback"] for r in rows] == [False, False, True, False]
    assert rows[0]["instruction"] == redteam_instruction(seeds[0])
    assert engine.sampling == Sampling(0.9, AttackSpec().topP, 20, seed=3 * 1000 + 2)
