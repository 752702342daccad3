"""``initialize``: SEAS's initialization stage, supervised fine-tuning of the red team on the seeds.

Each example asks the red team for a prompt in a seed's category and style (the
attack instruction without an example) and trains it, with the loss on the
completion only, to answer with the seed. No seed appears in another seed's
prompt: trained to turn one seed into another, a small model learns to reproduce
that other seed verbatim when it is shown the first during attacks.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import data
from ..contract import InitializeConfig, InitializeResult
from ..progress import Progress
from ..redteam import redteam_instruction
from ..training import common_args, load_for_training, logged_mean, lora_config, progress_callback, save_merged


def sft_examples(seeds: list[data.PromptItem]) -> list[dict]:
    """Prompt/completion SFT rows: the attack task for a seed's category and style -> the seed."""
    return [{"prompt": [{"role": "user", "content": redteam_instruction(seed, example=False)}],
             "completion": [{"role": "assistant", "content": seed.prompt}]} for seed in seeds]


def run(cfg: InitializeConfig, progress: Progress) -> InitializeResult:
    started = time.monotonic()
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    rows = sft_examples(data.load("seeds", cfg.seeds))
    tokenizer, model, dtype = load_for_training(cfg.redTeam, cfg.cacheDir)
    args = SFTConfig(
        per_device_train_batch_size=cfg.training.batchSize, num_train_epochs=cfg.initialization.epochs,
        learning_rate=cfg.initialization.learningRate, max_length=cfg.training.maxLength, completion_only_loss=True,
        **common_args(dtype, str(Path(cfg.outputDir) / "trainer"), cfg.seed),
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
        peft_config=lora_config(cfg.training.redTeam.lora), callbacks=[progress_callback(progress, "sft")],
    )
    trainer.train()
    target = save_merged(trainer, tokenizer, Path(cfg.outputDir) / "model")
    return InitializeResult(
        round=cfg.round, seconds=round(time.monotonic() - started, 1), model=str(target), examples=len(rows),
        loss=logged_mean(trainer.state.log_history, "loss"),
    )
