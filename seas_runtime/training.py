"""Training helpers the training stages share: loading for TRL, LoRA, trainer arguments, progress, the rank-0 save.

Both stages run alone or under ``torchrun``. The distribution is the Trainer's own
(accelerate underneath): DDP when training a LoRA adapter, FSDP full shard when
fine-tuning every weight. This module only chooses the arguments that say so, and
saves on rank 0 what every rank trained.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from statistics import mean
from typing import Any, Optional

from .artifacts import atomic_dir
from .data import DataError
from .distributed import BatchLayout, RankInfo, backend, same_on_every_rank
from .models import load_causal_lm, pick_device, pick_dtype
from .progress import Progress
from .settings import LoraSpec, ModelRef, TrainingMethod

log = logging.getLogger(__name__)


def load_for_training(ref: ModelRef, cache: Optional[str], method: TrainingMethod, seed: int) -> tuple[Any, Any, Any]:
    """(tokenizer, model, compute dtype) ready for TRL.

    A LoRA run keeps the frozen weights in the dtype the hardware computes fastest in. A full
    fine-tune with ``dtype: auto`` keeps float32 master weights and computes in that dtype by
    autocast: a step of 5e-6 is far below bfloat16's resolution (about 4e-3 relative), so
    bfloat16 weights would round most updates away.
    """
    from transformers import set_seed

    set_seed(seed)  # the adapter's initialisation and anything else drawn before the Trainer seeds
    device = pick_device()
    if method == TrainingMethod.FULL and ref.dtype == "auto":
        tokenizer, model, _ = load_causal_lm(ref.model_copy(update={"dtype": "float32"}), cache, device)
        return tokenizer, model, pick_dtype("auto", device)
    return load_causal_lm(ref, cache, device)


def lora_config(spec: LoraSpec):
    from peft import LoraConfig

    return LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=list(spec.targetModules), task_type="CAUSAL_LM")


def peft_config(method: TrainingMethod, spec: LoraSpec):
    """The adapter to train, or None for a full fine-tune."""
    return lora_config(spec) if method == TrainingMethod.LORA else None


# FSDP2 (``fully_shard``) with parameters resharded after each forward: ZeRO-3's full shard. The
# full state dict is gathered (to rank 0's CPU) to save a model others can load without FSDP.
FSDP_CONFIG = {"version": 2, "reshard_after_forward": True, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "state_dict_type": "FULL_STATE_DICT"}


def common_args(dtype, output_dir: str, seed: int, method: TrainingMethod = TrainingMethod.LORA, rank: RankInfo = RankInfo(),
                layout: Optional[BatchLayout] = None) -> dict:
    """Trainer arguments every stage shares: no checkpoints or reports, CPU when there is no GPU, and how to distribute.

    Under torchrun a LoRA run is DDP and a full fine-tune is FSDP full shard (every trained
    parameter takes part in each step, so DDP need not search for unused ones); ``layout``
    splits the global batch over the processes.
    """
    import torch

    cuda = torch.cuda.is_available()
    args = dict(
        output_dir=output_dir, save_strategy="no", report_to=[], logging_steps=1, disable_tqdm=True, seed=seed,
        use_cpu=not cuda, bf16=dtype == torch.bfloat16, gradient_checkpointing=False,
    )
    if layout is not None:
        args.update(per_device_train_batch_size=layout.per_device, gradient_accumulation_steps=layout.accumulation)
    if rank.distributed:
        args.update(ddp_backend=backend(cuda), ddp_find_unused_parameters=False)
        if method == TrainingMethod.FULL:
            args.update(fsdp=True, fsdp_config=dict(FSDP_CONFIG))
    return args


def warn_unsharded(trainer, method: TrainingMethod, rank: RankInfo) -> None:
    """Say so when a full fine-tune under torchrun is not sharded.

    accelerate turns its FSDP plugin on only for GPU-like devices; on CPUs (its MULTI_CPU
    mode) it drops the plugin and wraps the model in DDP, so each process holds the whole
    model, its gradients and optimizer state.
    """
    if method == TrainingMethod.FULL and rank.distributed and rank.main and not getattr(trainer, "is_fsdp_enabled", False):
        import accelerate

        log.warning("full fine-tuning runs as DDP, not FSDP: accelerate %s shards with FSDP only on GPUs (each of the %d processes "
                    "holds the whole model)", accelerate.__version__, rank.world_size)


def check_same_data(rows: list[dict]) -> None:
    """Fail when the ranks read different data (e.g. pods that do not share the artifact volume)."""
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    if not same_on_every_rank(digest):
        raise DataError("the training processes read different data: every pod must mount the same artifact volume")


def progress_callback(progress: Progress, task: str):
    """A TrainerCallback that reports optimizer steps as progress lines (from rank 0 only)."""
    from transformers import TrainerCallback

    class _Report(TrainerCallback):
        advance = None

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
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


def save_merged(trainer, tokenizer, target: Path, rank: RankInfo = RankInfo(), dtype: Any = None) -> Path:
    """Save the trained model as safetensors, atomically, from rank 0; the other ranks only help gather it.

    A LoRA adapter is merged into the weights first (every DDP rank holds the same one). Under
    FSDP each rank holds a shard, so every rank takes part in gathering the full state dict,
    which arrives on rank 0 alone. ``dtype`` (a full fine-tune's compute dtype) is the dtype
    the weights are saved in, so the next stage loads them as it would the original.
    """
    import torch

    accelerator = trainer.accelerator
    model = accelerator.unwrap_model(trainer.model)
    state_dict = None
    if getattr(accelerator, "is_fsdp2", False) or getattr(accelerator.state, "fsdp_plugin", None) is not None:
        state_dict = accelerator.get_state_dict(trainer.model)  # a collective: every rank must call it
    if not rank.main:
        return target
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if dtype is not None and dtype != torch.float32:
        state_dict = {k: v.to(dtype) if v.is_floating_point() else v for k, v in (state_dict or model.state_dict()).items()}
        model.config.dtype = dtype
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True, **({"state_dict": state_dict} if state_dict is not None else {}))
        tokenizer.save_pretrained(tmp)
    return target
