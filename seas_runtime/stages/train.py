"""``train-target`` / ``train-redteam``: DPO, with a LoRA adapter (merged) or on every weight, saved as safetensors.

Alone or under ``torchrun``: every rank reads the same pairs and the Trainer's
sampler gives each its share of every step (DDP for LoRA, FSDP for a full
fine-tune). The global batch stays the spec's whatever the number of processes,
so the result depends on it only through floating-point order (and through the
last step when the pairs are not a multiple of the global batch: accelerate fills
that step on every rank with pairs from the start). Rank 0 alone saves the model
and returns the result; the other ranks return None after the final barrier.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

from ..artifacts import read_jsonl
from ..contract import Stage, TrainConfig, TrainResult
from ..data import DataError
from ..distributed import batch_layout, finish, rank_info
from ..progress import Progress
from ..settings import TrainingMethod
from ..training import (
    check_same_data, common_args, load_for_training, logged_mean, peft_config, progress_callback, save_merged, warn_unsharded,
)

log = logging.getLogger(__name__)


def conversational(row: dict) -> dict:
    """A pair row in TRL's conversational preference format."""
    return {
        "prompt": [{"role": "user", "content": row["prompt"]}],
        "chosen": [{"role": "assistant", "content": row["chosen"]}],
        "rejected": [{"role": "assistant", "content": row["rejected"]}],
    }


MIN_COMPLETION_TOKENS = 8


def fitting(rows: list[dict], tokenizer, max_length: int) -> list[dict]:
    """The pairs whose prompt leaves room for an answer within ``max_length`` tokens.

    TRL would truncate the others to nothing and drop them, and fail outright when none are left.
    """
    kept = []
    for row in rows:
        prompt = tokenizer.apply_chat_template(conversational(row)["prompt"], tokenize=False, add_generation_prompt=True)
        if len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) + MIN_COMPLETION_TOKENS <= max_length:
            kept.append(row)
    if len(kept) < len(rows):
        log.warning("%d of %d pairs have prompts too long for maxLength %d and are skipped", len(rows) - len(kept), len(rows), max_length)
    return kept


def run(cfg: TrainConfig, progress: Progress) -> Optional[TrainResult]:
    """Train on the round's pairs; the result on rank 0, None on the other ranks."""
    started = time.monotonic()
    rank = rank_info()
    t = cfg.training
    layout = batch_layout(t.batchSize, t.gradientAccumulationSteps, rank.world_size)
    try:
        rows = read_jsonl(cfg.pairsFile)
    except OSError as exc:
        raise DataError(f"{cfg.pairsFile}: cannot read pairs: {exc.strerror or exc}") from None
    tokenizer = model = dtype = None
    if rows:
        tokenizer, model, dtype = load_for_training(cfg.model, cfg.cacheDir, t.method, cfg.seed + cfg.round)
        rows = fitting(rows, tokenizer, cfg.training.maxLength)
    if not rows:
        log.warning("no pairs fit for %s in round %d: the model carries over untrained", cfg.stage, cfg.round)
        if not rank.main:
            return None  # every rank reads the same pairs, so all skip together: no process group was made
        progress.task("dpo", 1)(1)
        return TrainResult(stage=cfg.stage, round=cfg.round, model=cfg.model.model, trained=False, pairs=0)

    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    own = t.target if cfg.stage == Stage.TRAIN_TARGET else t.redTeam
    # precompute_ref_log_probs: the reference's log-probs once, not in every epoch (same figures; 2 epochs ~11% faster on a CPU).
    # Single process only: under torchrun (2 CPU ranks, gloo) TRL 1.16's precompute pass made a rank fail.
    args = DPOConfig(
        num_train_epochs=own.epochs, learning_rate=t.learning_rate(own), beta=t.beta, max_length=t.maxLength,
        precompute_ref_log_probs=not rank.distributed,
        **({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, own.sftWeight]} if own.sftWeight > 0 else {}),
        **common_args(dtype, str(Path(cfg.outputDir) / "trainer"), cfg.seed + cfg.round, t.method, rank, layout),
    )
    trainer = DPOTrainer(
        model=model, args=args, train_dataset=Dataset.from_list([conversational(r) for r in rows]),
        processing_class=tokenizer, peft_config=peft_config(t.method, own.lora), callbacks=[progress_callback(progress, "dpo")],
    )
    warn_unsharded(trainer, t.method, rank)
    check_same_data(rows)
    trainer.train()
    history = trainer.state.log_history
    full = t.method == TrainingMethod.FULL
    target = save_merged(trainer, tokenizer, Path(cfg.outputDir) / "model", rank, dtype if full else None)
    finish()
    if not rank.main:
        return None
    return TrainResult(
        stage=cfg.stage, round=cfg.round, seconds=round(time.monotonic() - started, 1), model=str(target), trained=True,
        pairs=len(rows), loss=logged_mean(history, "loss"), rewardAccuracy=logged_mean(history, "rewards/accuracies"),
        rewardMargin=logged_mean(history, "rewards/margins"),
    )
