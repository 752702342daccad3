"""``initialize``: SEAS's initialization stage, supervised fine-tuning of the red team on the seeds.

Each example asks the red team for a prompt in a seed's category and style (the
attack instruction without an example) and trains it, with the loss on the
completion only, to answer with the seed. No seed appears in another seed's
prompt: trained to turn one seed into another, a small model learns to reproduce
that other seed verbatim when it is shown the first during attacks.

It follows ``training.method`` (a LoRA adapter, or every weight) and runs alone or
under ``torchrun`` as the training stages do (see ``stages.train``): rank 0 saves the
model and returns the result, the other ranks return None.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from .. import data
from ..contract import InitializeConfig, InitializeResult
from ..distributed import batch_layout, finish, rank_info
from ..progress import Progress
from ..redteam import redteam_instruction
from ..settings import TrainingMethod
from ..training import (
    check_same_data, common_args, load_for_training, logged_mean, peft_config, progress_callback, save_merged, warn_unsharded,
)


def sft_examples(seeds: list[data.PromptItem]) -> list[dict]:
    """Prompt/completion SFT rows: the attack task for a seed's category and style -> the seed."""
    return [{"prompt": [{"role": "user", "content": redteam_instruction(seed, example=False)}],
             "completion": [{"role": "assistant", "content": seed.prompt}]} for seed in seeds]


def run(cfg: InitializeConfig, progress: Progress) -> Optional[InitializeResult]:
    """Fine-tune the red team on the seeds; the result on rank 0, None on the other ranks."""
    started = time.monotonic()
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    rank = rank_info()
    t = cfg.training
    # One pass of batchSize examples per step, as before, split over the processes.
    layout = batch_layout(t.batchSize, 1, rank.world_size)
    rows = sft_examples(data.load("seeds", cfg.seeds))
    tokenizer, model, dtype = load_for_training(cfg.redTeam, cfg.cacheDir, t.method, cfg.seed)
    args = SFTConfig(
        num_train_epochs=cfg.initialization.epochs,
        learning_rate=cfg.initialization.learningRate, max_length=t.maxLength, completion_only_loss=True,
        **common_args(dtype, str(Path(cfg.outputDir) / "trainer"), cfg.seed, t.method, rank, layout),
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
        peft_config=peft_config(t.method, t.redTeam.lora), callbacks=[progress_callback(progress, "sft")],
    )
    warn_unsharded(trainer, t.method, rank)
    check_same_data(rows)
    trainer.train()
    full = t.method == TrainingMethod.FULL
    target = save_merged(trainer, tokenizer, Path(cfg.outputDir) / "model", rank, dtype if full else None)
    finish()
    if not rank.main:
        return None
    return InitializeResult(
        round=cfg.round, seconds=round(time.monotonic() - started, 1), model=str(target), examples=len(rows),
        loss=logged_mean(trainer.state.log_history, "loss"),
    )
