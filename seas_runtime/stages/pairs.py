"""``pairs``: turn attack records into DPO pairs for the red team and the target."""

from __future__ import annotations

import time
from pathlib import Path

from .. import data
from ..artifacts import read_jsonl, write_jsonl
from ..contract import PairsConfig, PairsResult
from ..pair_selection import record_from_row, select_pairs
from ..progress import Progress


def run(cfg: PairsConfig, progress: Progress) -> PairsResult:
    started = time.monotonic()
    try:
        rows = read_jsonl(cfg.records)
    except OSError as exc:
        raise data.DataError(f"{cfg.records}: cannot read attack records: {exc.strerror or exc}") from None
    records = [record_from_row(row) for row in rows]
    helpful = data.load("helpful", cfg.helpful) if cfg.pairs.helpfulPairs else []
    selected = select_pairs(
        records, helpful, helpful_count=cfg.pairs.helpfulPairs, refusal_fallback=cfg.pairs.refusalFallback,
        max_prompt_chars=cfg.pairs.maxPromptChars, max_response_chars=cfg.pairs.maxResponseChars,
        max_pairs=cfg.maxPairs, seed=cfg.seed + cfg.round,
    )
    out = Path(cfg.outputDir)
    target = write_jsonl(out / "target.jsonl", [p.as_row() for p in selected.target])
    redteam = write_jsonl(out / "redteam.jsonl", [p.as_row() for p in selected.redteam])
    progress.task("pairs", 1)(1)
    return PairsResult(
        round=cfg.round, seconds=round(time.monotonic() - started, 1), target=len(selected.target), redteam=len(selected.redteam),
        helpful=selected.helpful, targetOwn=selected.target_own, targetFile=str(target), redteamFile=str(redteam), dropped=dict(selected.dropped),
    )
