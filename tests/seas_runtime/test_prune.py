"""Pruning expired cycles before a stage runs: only folders of earlier cycles of the same evolution, never anything else."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from seas_runtime import cli
from seas_runtime.contract import PairsConfig, PairsResult, dump_stage_config
from seas_runtime.settings import PairsSpec


def layout(tmp_path: Path) -> dict[str, Path]:
    """A volume with two evolutions of one namespace; demo runs cycle 3, round 0."""
    demo = tmp_path / "artifacts" / "ns" / "demo"
    paths = {
        "evolution": demo,
        "c0": demo / "c0", "c1": demo / "c1", "c2": demo / "c2", "current": demo / "c3",
        "sibling": tmp_path / "artifacts" / "ns" / "other" / "c0",
        "cache": tmp_path / "artifacts" / ".cache",
        "outside": tmp_path / "elsewhere",
    }
    for name in ("c0", "c1", "c2", "sibling", "cache", "outside"):
        (paths[name] / "r1" / "train-target" / "model").mkdir(parents=True)
        (paths[name] / "r1" / "train-target" / "model" / "adapter.safetensors").write_text("weights")
    (paths["current"] / "r0" / "evaluate").mkdir(parents=True)
    (demo / "c4").symlink_to(paths["outside"])  # a link out of the evolution
    return paths


def config(paths: dict[str, Path], prune: list[str]) -> PairsConfig:
    return PairsConfig(evolution="demo", round=0, outputDir=str(paths["current"] / "r0" / "evaluate"), records="r.jsonl", pairs=PairsSpec(), prune=prune)


@pytest.mark.parametrize("listed, removed", [
    (lambda p: [str(p["c0"]), str(p["c2"])], ["c0", "c2"]),
    (lambda p: [str(p["c1"]) + "/"], ["c1"]),
    (lambda p: [str(p["evolution"] / "c9")], []),  # already gone: nothing to do
])
def test_prune_removes_earlier_cycles_of_the_same_evolution(tmp_path, listed, removed):
    paths = layout(tmp_path)
    done = cli.prune_artifacts(config(paths, listed(paths)))
    for name in ("c0", "c1", "c2"):
        gone = name in removed
        assert paths[name].exists() is not gone
    if removed:
        assert done == [str(paths[name].resolve()) for name in removed]
    assert (paths["current"] / "r0" / "evaluate").is_dir()


def test_a_folder_inside_an_earlier_cycle_may_be_pruned(tmp_path):
    paths = layout(tmp_path)
    inside = paths["c0"] / "r1" / "train-target"
    assert cli.prune_artifacts(config(paths, [str(inside)])) == [str(inside.resolve())]
    assert not inside.exists() and (paths["c0"] / "r1").is_dir()


@pytest.mark.parametrize("forged", [
    lambda p: str(p["evolution"]),  # the evolution itself
    lambda p: str(p["current"]),  # the running cycle
    lambda p: str(p["current"] / "r0" / "evaluate"),  # the stage's own folder
    lambda p: str(p["current"] / "r0"),
    lambda p: str(p["current"] / "r1"),  # anything else of the running cycle
    lambda p: str(p["evolution"].parent),  # the namespace
    lambda p: str(p["sibling"]),  # another evolution
    lambda p: str(p["cache"]),  # the shared model cache
    lambda p: str(p["outside"]),
    lambda p: str(p["evolution"] / "c0" / ".." / ".." / "other" / "c0"),  # a way out by ..
    lambda p: str(p["evolution"] / "c4"),  # a way out by a link
    lambda p: "/",
    lambda p: "c0",  # relative: resolved against whatever the working directory is
])
def test_prune_refuses_anything_else_with_a_warning(tmp_path, forged, caplog, monkeypatch):
    paths = layout(tmp_path)
    monkeypatch.chdir(paths["evolution"])
    with caplog.at_level(logging.WARNING, logger="seas_runtime"):
        assert cli.prune_artifacts(config(paths, [forged(paths)])) == []
    assert "prune: refusing" in caplog.text
    for name in ("c0", "c1", "c2", "sibling", "cache", "outside"):
        assert (paths[name] / "r1" / "train-target" / "model" / "adapter.safetensors").exists()
    assert (paths["current"] / "r0" / "evaluate").is_dir()


def test_the_stage_command_prunes_before_the_stage_runs(tmp_path, monkeypatch):
    paths = layout(tmp_path)
    cfg = config(paths, [str(paths["c0"]), str(paths["outside"])])
    seen = []

    def run(stage_cfg, progress):
        seen.append(paths["c0"].exists())
        return PairsResult(round=0, target=0, redteam=0, targetFile="t.jsonl", redteamFile="r.jsonl")

    monkeypatch.setattr(cli, "recipe", lambda stage: SimpleNamespace(run=run))
    file = tmp_path / "config.json"
    file.write_text(json.dumps(dump_stage_config(cfg)))
    assert cli.main(["pairs", "--config", str(file)]) == 0
    assert seen == [False]  # c0 was gone when the stage ran
    assert paths["outside"].exists()


def test_a_config_without_prune_deletes_nothing(tmp_path):
    paths = layout(tmp_path)
    cfg = PairsConfig(evolution="demo", round=0, outputDir=str(paths["current"] / "r0" / "evaluate"), records="r.jsonl", pairs=PairsSpec())
    assert cfg.prune == [] and cli.prune_artifacts(cfg) == []
    assert all(paths[name].exists() for name in ("c0", "c1", "c2"))
