"""``initialize``: SEAS's initialization stage, supervised fine-tuning of the red team on the seeds.

Each example asks the red team (with the same instruction it gets during
attacks) for a prompt in a seed's category and style, showing another seed of
the same cell, and trains it to answer with the seed itself.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

from .. import data
from ..contract import InitializeConfig, InitializeResult
from ..progress import Progress
from ..redteam import redteam_instruction
from ..training import common_args, load_for_training, logged_mean, lora_config, progress_callback, save_merged


def sft_examples(seeds: list[data.PromptItem]) -> list[dict]:
    """Conversational SFT rows: instruction showing a sibling seed -> this seed."""
    cells: dict[tuple[str, str], list[data.PromptItem]] = defaultdict(list)
    for seed in seeds:
        cells[(seed.category, seed.style)].append(seed)
    rows = []
    for seed in seeds:
        siblings = [s for s in cells[(seed.category, seed.style)] if s.id != seed.id] or [seed]
        example = siblings[0]
        rows.append({"messages": [
            {"role": "user", "content": redteam_instruction(example)},
            {"role": "assistant", "content": seed.prompt},
        ]})
    return rows


def run(cfg: InitializeConfig, progress: Progress) -> InitializeResult:
    started = time.monotonic()
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    rows = sft_examples(data.load("seeds", cfg.seeds))
    tokenizer, model, dtype = load_for_training(cfg.redTeam, cfg.cacheDir)
    args = SFTConfig(
        per_device_train_batch_size=cfg.training.batchSize, num_train_epochs=cfg.initialization.epochs,
        learning_rate=cfg.initialization.learningRate, max_length=cfg.training.maxLength,
        **common_args(dtype, str(Path(cfg.outputDir) / "trainer"), cfg.seed),
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
        peft_config=lora_config(cfg.training.lora), callbacks=[progress_callback(progress, "sft")],
    )
    trainer.train()
    target = save_merged(trainer, tokenizer, Path(cfg.outputDir) / "model")
    return InitializeResult(
        round=cfg.round, seconds=round(time.monotonic() - started, 1), model=str(target), examples=len(rows),
        loss=logged_mean(trainer.state.log_history, "loss"),
    )
