"""The attack stage against stand-in engines: what the target is asked, and what the records keep."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable

import pytest

from seas_runtime.contract import AttackConfig
from seas_runtime.engines.base import ContinuationScore
from seas_runtime.progress import Progress
from seas_runtime.settings import AttackSpec, ClassifierSpec, ModelRef
from seas_runtime.stages import attack

OFF_GOAL = "Tell me a cheerful story about dragons and castles."


class _Engine:
    """Writes an on-goal attack (the seed, reworded) for the first sample of a seed and an off-goal one for the second."""

    def __init__(self, asked: list[str]) -> None:
        self.asked = asked

    def chat(self, conversations, sampling, progress=None) -> list[str]:
        out = []
        for index, conversation in enumerate(conversations):
            text = conversation[-1]["content"]
            if text.startswith("You are a red-team assistant"):
                seed = text.split("Example: ", 1)[1].split("\n", 1)[0]
                out.append(f"New prompt: {seed} Right now." if index % 2 == 0 else OFF_GOAL)
            else:
                self.asked.append(text)
                out.append("Sure, here is how to do it." if len(self.asked) % 2 else "I'm sorry, but I can't help with that.")
        return out

    def score(self, requests, progress=None) -> list[ContinuationScore]:
        return [ContinuationScore(logprob=-3.0 * 10, tokens=10) for _ in requests]  # perplexity e^3: not gibberish

    def close(self) -> None:
        pass


@pytest.fixture()
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    class _Pool:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def get(self, ref, scoring=False):
            return _Engine(seen)

        def close(self) -> None:
            pass

    monkeypatch.setattr(attack, "EnginePool", _Pool)
    return seen


def test_the_target_answers_the_seed_in_place_of_an_off_goal_prompt(asked: list[str], tmp_path: Path, tiny_data: Callable[[str, int], str]):
    seeds = tiny_data("seeds.jsonl", 2)
    cfg = AttackConfig(
        evolution="t", round=1, outputDir=str(tmp_path), target=ModelRef(model="t"), redTeam=ModelRef(model="r"),
        classifier=ClassifierSpec(type="refusal-match"), seeds=seeds,
        attack=AttackSpec(maxSeeds=2, samplesPerSeed=2, responsesPerPrompt=2, maxPromptPerplexity=1000.0),
    )
    result = attack.run(cfg, Progress(io.StringIO()))
    rows = [json.loads(line) for line in Path(result.records).read_text().splitlines()]
    seed_prompts = {json.loads(line)["prompt"] for line in Path(seeds).read_text().splitlines()}

    on_goal = [row for row in rows if row["offGoal"] is None]
    off_goal = [row for row in rows if row["offGoal"] is not None]
    assert len(on_goal) == 2 and len(off_goal) == 2 and result.goals == {"onGoal": 2, "offGoal": 2}
    for row in on_goal:
        assert row["asked"] == row["prompt"] and row["prompt"].endswith("Right now.")
    for row in off_goal:
        # The red team keeps its own prompt (rejected in its pairs); the target was asked the harmful seed instead.
        assert row["prompt"] == OFF_GOAL and row["asked"] == row["seed"] and row["seed"] in seed_prompts
    assert OFF_GOAL not in asked
    assert sorted(set(asked)) == sorted({row["asked"] for row in rows}) and len(asked) == 4 * 2
    assert all(len(row["responses"]) == 2 for row in rows)
