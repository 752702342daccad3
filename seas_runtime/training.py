"""Training helpers the training stages share: loading for TRL, LoRA, trainer arguments, progress, merged atomic save."""

from __future__ import annotations

import math
from pathlib import Path
from statistics import mean
from typing import Optional

from .artifacts import atomic_dir
from .models import load_causal_lm, pick_device
from .progress import Progress
from .settings import LoraSpec, ModelRef


def load_for_training(ref: ModelRef, cache: Optional[str]):
    """Tokenizer, model and dtype ready for TRL, in the dtype the hardware trains fastest in."""
    return load_causal_lm(ref, cache, pick_device())


def lora_config(spec: LoraSpec):
    from peft import LoraConfig

    return LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=list(spec.targetModules), task_type="CAUSAL_LM")


def common_args(dtype, output_dir: str, seed: int) -> dict:
    """Trainer arguments every stage shares: no checkpoints or reports, CPU when there is no GPU."""
    import torch

    return dict(
        output_dir=output_dir, save_strategy="no", report_to=[], logging_steps=1, disable_tqdm=True, seed=seed,
        use_cpu=not torch.cuda.is_available(), bf16=dtype == torch.bfloat16, gradient_checkpointing=False,
    )


def progress_callback(progress: Progress, task: str):
    """A TrainerCallback that reports optimizer steps as progress lines."""
    from transformers import TrainerCallback

    class _Report(TrainerCallback):
        advance = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.advance = progress.task(task, state.max_steps)

        def on_step_end(self, args, state, control, **kwargs):
            if self.advance:
                self.advance(1)

    return _Report()


def logged_mean(history: list[dict], key: str) -> Optional[float]:
    """Mean of a logged figure over training steps, rounded; None if never logged or not finite (a diverged run)."""
    values = [entry[key] for entry in history if key in entry]
    value = mean(values) if values else None
    return round(value, 4) if value is not None and math.isfinite(value) else None


def save_merged(trainer, tokenizer, target: Path) -> Path:
    """Merge the LoRA adapter into the weights and save safetensors atomically."""
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return target
