"""Engines and the choice between them.

A new engine is an :class:`~.base.Engine` subclass in its own module, chosen in
:func:`open_engine` and named in ``ModelRef.engine``.
"""

from __future__ import annotations

import importlib.util
from typing import Optional

from ..models import hub_token, load_errors, resolve_model
from ..settings import ModelRef
from .base import ContinuationScore, Engine, Sampling, ScoreRequest

__all__ = ["Engine", "Sampling", "ScoreRequest", "ContinuationScore", "choose_engine", "open_engine"]


def choose_engine(requested: str, gpu: bool, vllm_installed: bool) -> str:
    """auto means vLLM when a GPU and vLLM are both present, else transformers."""
    if requested != "auto":
        return requested
    return "vllm" if gpu and vllm_installed else "transformers"


def open_engine(ref: ModelRef, cache: Optional[str] = None, batch_size: int = 32, seed: int = 0, scoring: bool = False) -> Engine:
    """Load ``ref`` on the engine it asks for (or the best available).

    ``scoring``: the engine will be asked to :meth:`~.base.Engine.score`; vLLM then runs without
    prefix caching, which can make prompt logprobs depend on request order (the transformers
    engine ignores it). A served model (``ref.endpoint``) is used over HTTP and needs none of this.
    """
    if ref.endpoint is not None:
        from .endpoint import EndpointEngine

        return EndpointEngine(ref.endpoint)
    import torch

    kind = choose_engine(ref.engine, torch.cuda.is_available(), importlib.util.find_spec("vllm") is not None)
    if kind == "vllm":
        from .vllm_engine import VllmEngine

        path = resolve_model(ref.model, cache)
        with load_errors(ref.model):
            return VllmEngine(
                path, ref.dtype, ref.tensorParallelSize, ref.maxModelLen, seed=seed, token=hub_token(),
                gpu_memory_utilization=ref.gpuMemoryUtilization, prefix_caching=not scoring,
            )
    from .hf import TransformersEngine

    return TransformersEngine(ref, cache, batch_size=batch_size)
