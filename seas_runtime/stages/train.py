"""``train-target`` / ``train-redteam``: DPO with a LoRA adapter, merged and saved as safetensors."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from ..artifacts import read_jsonl
from ..contract import Stage, TrainConfig, TrainResult
from ..data import DataError
from ..progress import Progress
from ..training import common_args, load_for_training, logged_mean, lora_config, progress_callback, save_merged

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


def run(cfg: TrainConfig, progress: Progress) -> TrainResult:
    started = time.monotonic()
    try:
        rows = read_jsonl(cfg.pairsFile)
    except OSError as exc:
        raise DataError(f"{cfg.pairsFile}: cannot read pairs: {exc.strerror or exc}") from None
    tokenizer = model = dtype = None
    if rows:
        tokenizer, model, dtype = load_for_training(cfg.model, cfg.cacheDir)
        rows = fitting(rows, tokenizer, cfg.training.maxLength)
    if not rows:
        log.warning("no pairs fit for %s in round %d: the model carries over untrained", cfg.stage, cfg.round)
        progress.task("dpo", 1)(1)
        return TrainResult(stage=cfg.stage, round=cfg.round, model=cfg.model.model, trained=False, pairs=0)

    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    t = cfg.training
    own = t.target if cfg.stage == Stage.TRAIN_TARGET else t.redTeam
    args = DPOConfig(
        per_device_train_batch_size=t.batchSize, gradient_accumulation_steps=t.gradientAccumulationSteps,
        num_train_epochs=own.epochs, learning_rate=own.learningRate, beta=t.beta, max_length=t.maxLength,
        **({"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, own.sftWeight]} if own.sftWeight > 0 else {}),
        **common_args(dtype, str(Path(cfg.outputDir) / "trainer"), cfg.seed + cfg.round),
    )
    trainer = DPOTrainer(
        model=model, args=args, train_dataset=Dataset.from_list([conversational(r) for r in rows]),
        processing_class=tokenizer, peft_config=lora_config(own.lora), callbacks=[progress_callback(progress, "dpo")],
    )
    trainer.train()
    history = trainer.state.log_history
    target = save_merged(trainer, tokenizer, Path(cfg.outputDir) / "model")
    return TrainResult(
        stage=cfg.stage, round=cfg.round, seconds=round(time.monotonic() - started, 1), model=str(target), trained=True,
        pairs=len(rows), loss=logged_mean(history, "loss"), rewardAccuracy=logged_mean(history, "rewards/accuracies"),
        rewardMargin=logged_mean(history, "rewards/margins"),
    )
