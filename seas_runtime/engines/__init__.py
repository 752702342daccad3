"""Engines and the choice between them."""

from __future__ import annotations

import importlib.util
import os
from typing import Optional

from seas_operator.api import ModelRef

from ..models import ModelError, resolve_model
from .base import ContinuationScore, Engine, Sampling, ScoreRequest

__all__ = ["Engine", "Sampling", "ScoreRequest", "ContinuationScore", "choose_engine", "open_engine"]


def choose_engine(requested: str, gpu: bool, vllm_installed: bool) -> str:
    """auto means vLLM when a GPU and vLLM are both present, else transformers."""
    if requested != "auto":
        return requested
    return "vllm" if gpu and vllm_installed else "transformers"


def open_engine(ref: ModelRef, cache: Optional[str] = None, batch_size: int = 32, seed: int = 0) -> Engine:
    """Load ``ref`` on the engine it asks for (or the best available)."""
    import torch

    path = resolve_model(ref.model, cache)
    token = os.environ.get("HF_TOKEN") or None
    kind = choose_engine(ref.engine, torch.cuda.is_available(), importlib.util.find_spec("vllm") is not None)
    try:
        if kind == "vllm":
            from .vllm_engine import VllmEngine

            return VllmEngine(path, ref.dtype, ref.tensorParallelSize, ref.maxModelLen, seed=seed, token=token)
        from .hf import TransformersEngine

        return TransformersEngine(path, ref.dtype, batch_size=batch_size, token=token)
    except OSError as exc:  # missing path, unknown hub id, gated repo without a token
        raise ModelError(f"cannot load model {ref.model!r}: {str(exc).splitlines()[0]}") from None
