"""The vLLM engine: offline ``vllm.LLM`` with ``SamplingParams``, for GPUs.

Written against vLLM 0.33's documented offline API (``LLM(model=..., tensor_parallel_size=...,
gpu_memory_utilization=..., enable_prefix_caching=...)``, ``LLM.chat``, ``LLM.generate``,
``SamplingParams(seed=..., logprobs=..., prompt_logprobs=...)``). It cannot run on CPU-only
machines; tests exercise it with a stand-in ``vllm`` module (tests/seas_runtime/test_vllm_engine.py).

Sampling matches the transformers engine: every request of a call gets its own
``SamplingParams`` seeded from the call's seed and the request's index, so the
several samples an attack asks of one prompt differ, and each is reproducible.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from .base import TOP_K_STATS, Advance, ContinuationScore, Engine, Generation, Messages, Sampling, ScoreRequest

TOP_LOGPROBS = 20  # first_token_probs: vLLM's default max_logprobs is 20, so this is the most a request may ask
SEED_STRIDE = 1_000_003  # request seed = call seed * SEED_STRIDE + index, as in TransformersEngine._generate
# The stage pod's GPUs, set by the operator (seas_operator/builders.py GPUS_ENV) on every GPU pod.
GPUS_ENV = "SEAS_GPUS_PER_POD"


def gpus_per_pod(environ: Mapping[str, str]) -> int:
    """The GPUs the operator gave this pod (``SEAS_GPUS_PER_POD``); 0 when unset or not a number (a local run)."""
    try:
        return max(int(environ.get(GPUS_ENV, "0")), 0)
    except ValueError:
        return 0


def _fits(size: int, heads: Optional[int], kv_heads: Optional[int]) -> bool:
    # vLLM splits the attention heads evenly across the GPUs, and the KV heads too, or replicates them when there
    # are fewer KV heads than GPUs (then the GPUs must be a multiple of them).
    if heads is not None and heads % size:
        return False
    if kv_heads is not None and (kv_heads % size if kv_heads >= size else size % kv_heads):
        return False
    return True


def choose_tensor_parallel_size(requested: int, gpus: int, heads: Optional[int] = None, kv_heads: Optional[int] = None) -> int:
    """The tensor parallel size vLLM loads a model with.

    ``requested`` above 1 (``ModelRef.tensorParallelSize``) is kept as asked. The default 1 means "the pod's GPUs":
    on a pod with ``gpus`` > 1 the model is split over all of them, or over the most of them that divide its
    attention heads (``heads``, ``kv_heads`` from its config; unknown heads do not limit it), so a model too big
    for one GPU loads and none of the pod's GPUs sits idle.
    """
    if requested > 1 or gpus <= 1:
        return max(requested, 1)
    return next(size for size in range(gpus, 0, -1) if _fits(size, heads, kv_heads))


def attention_heads(path: str) -> tuple[Optional[int], Optional[int]]:
    """(attention heads, KV heads) from the ``config.json`` of a local model folder; (None, None) when there is none to read."""
    try:
        config = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    config = config.get("text_config", config) if isinstance(config, dict) else {}
    heads = config.get("num_attention_heads")
    kv_heads = config.get("num_key_value_heads", heads)
    return (heads if isinstance(heads, int) and heads > 0 else None), (kv_heads if isinstance(kv_heads, int) and kv_heads > 0 else None)


def request_seeds(seed: int, count: int) -> list[int]:
    """The seed of each of ``count`` requests in a call seeded ``seed`` (the transformers engine's rule)."""
    return [seed * SEED_STRIDE + index for index in range(count)]


def top_k_stats(top: dict[int, Any], k: int = TOP_K_STATS) -> tuple[float, float]:
    """Entropy (nats) of the ``k`` most likely tokens' probabilities renormalised to sum 1, and the largest probability.

    ``top`` is one step of vLLM's ``CompletionOutput.logprobs``: token id -> ``Logprob``. vLLM
    returns the top ``logprobs`` tokens *plus* the sampled token when that one ranks lower, so a
    step holds k or k + 1 entries; sorting and keeping k drops the extra one.
    """
    logprobs = sorted((entry.logprob for entry in top.values()), reverse=True)[:k]
    probs = [math.exp(lp) for lp in logprobs]
    total = sum(probs)
    entropy = -sum(p / total * math.log(p / total) for p in probs if p > 0.0) if total > 0.0 else 0.0
    return entropy, (probs[0] if probs else 0.0)


def stopped_on_token(output: Any) -> bool:
    """Whether the last of ``output.token_ids`` is the stop token that ended generation.

    vLLM keeps the token that stopped a request (EOS, or one of the generation config's extra EOS
    ids it adds as stop token ids) in ``token_ids`` and ``logprobs`` but not in ``text``, and reports
    ``finish_reason == "stop"`` with ``stop_reason`` None (EOS) or the stop token's int id; only a
    stop *string*, which this engine never sets, gives a str stop_reason (vLLM PR #2976).
    """
    return getattr(output, "finish_reason", None) == "stop" and not isinstance(getattr(output, "stop_reason", None), str)


class VllmEngine(Engine):
    """Generation and scoring with vLLM's offline ``LLM``; GPU only."""

    name = "vllm"

    def __init__(
        self,
        path: str,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        max_model_len: Optional[int] = None,
        seed: int = 0,
        token: Optional[str] = None,
        gpu_memory_utilization: float = 0.85,
        prefix_caching: bool = True,
    ) -> None:
        """Load ``path`` in vLLM.

        ``gpu_memory_utilization`` is the share of each GPU vLLM may take (weights, activations
        and KV cache). ``prefix_caching`` speeds up generation over shared prompt prefixes but
        must be off on an engine that scores (see :meth:`score`). ``tensor_parallel_size`` 1 (the default)
        becomes the stage pod's GPUs (``SEAS_GPUS_PER_POD``, see :func:`choose_tensor_parallel_size`).
        """
        import vllm  # lazy: only GPU images carry it

        self._vllm = vllm
        gpus = gpus_per_pod(os.environ)
        if tensor_parallel_size <= 1 and gpus > 1:
            tensor_parallel_size = choose_tensor_parallel_size(tensor_parallel_size, gpus, *attention_heads(path))
        self.tensor_parallel_size = tensor_parallel_size
        self.prefix_caching = prefix_caching
        kwargs: dict[str, Any] = dict(
            model=path, dtype=dtype, tensor_parallel_size=tensor_parallel_size, seed=seed,
            gpu_memory_utilization=gpu_memory_utilization, enable_prefix_caching=prefix_caching,
        )
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        if token:
            kwargs["hf_token"] = token
        self.llm: Any = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def _params(self, sampling: Sampling, count: int, **extra: Any) -> list:
        """One SamplingParams per request.

        vLLM seeds each request's sampler from its own ``SamplingParams.seed``, so one shared
        params object would give every copy of a prompt the same sample; ``LLM.generate`` and
        ``LLM.chat`` take a list "paired one by one with the prompt" (vllm/entrypoints/llm.py
        docstrings). Greedy requests draw nothing and get no seed.
        """
        sampled = sampling.temperature > 0
        common = dict(temperature=sampling.temperature, top_p=sampling.top_p if sampled else 1.0, max_tokens=sampling.max_new_tokens, **extra)
        if not sampled:
            return [self._vllm.SamplingParams(**common) for _ in range(count)]
        return [self._vllm.SamplingParams(**common, seed=seed) for seed in request_seeds(sampling.seed, count)]

    def chat(self, conversations: Sequence[Messages], sampling: Sampling, progress: Advance = None) -> list[str]:
        """One assistant reply per conversation, through the model's chat template."""
        outputs = self.llm.chat(list(conversations), self._params(sampling, len(conversations)), use_tqdm=False)
        if progress:
            progress(len(outputs))
        return [o.outputs[0].text.strip() for o in outputs]

    def chat_details(self, conversations: Sequence[Messages], sampling: Sampling, progress: Advance = None) -> list[Generation]:
        """One assistant reply per conversation, with each generated token's log-probability, top-10 entropy and top probability.

        The statistics come from vLLM's per-step top-``TOP_K_STATS`` logprobs, which vLLM computes
        from the model's raw next-token distribution (before temperature and top-p).
        """
        params = self._params(sampling, len(conversations), logprobs=TOP_K_STATS)
        outputs = self.llm.chat(list(conversations), params, use_tqdm=False)
        generations = []
        for output in outputs:
            out = output.outputs[0]
            token_ids, steps = list(out.token_ids), list(out.logprobs or [])
            if token_ids and stopped_on_token(out):
                # The end-of-text token is not part of the answer (and the transformers engine never records it).
                token_ids, steps = token_ids[:-1], steps[:-1]
            chosen, entropies, top_probs = [], [], []
            for token, top in zip(token_ids, steps):
                entropy, top_prob = top_k_stats(top)
                chosen.append(top[token].logprob)
                entropies.append(entropy)
                top_probs.append(top_prob)
            generations.append(Generation(text=out.text.strip(), logprobs=tuple(chosen), entropies=tuple(entropies), top_probs=tuple(top_probs)))
        if progress:
            progress(len(outputs))
        return generations

    def _prompts(self, prompts: Sequence[str], templated: bool) -> list:
        # A templated prompt already holds its special tokens: hand vLLM the token ids so it adds none.
        if not templated:
            return list(prompts)
        return [{"prompt_token_ids": self.tokenizer(p, add_special_tokens=False)["input_ids"]} for p in prompts]

    def complete(self, prompts: Sequence[str], sampling: Sampling, progress: Advance = None, templated: bool = False) -> list[str]:
        """One raw completion per prompt (``templated``: the prompt already holds its special tokens)."""
        outputs = self.llm.generate(self._prompts(prompts, templated), self._params(sampling, len(prompts)), use_tqdm=False)
        if progress:
            progress(len(outputs))
        return [o.outputs[0].text.strip() for o in outputs]

    def first_token_probs(self, prompts: Sequence[str], candidates: Sequence[str], templated: bool = False) -> list[dict[str, float]]:
        """Per prompt, the probability that the first generated token is each candidate's first token."""
        # The 20 most likely first tokens; a candidate outside them has a probability below the 20th, recorded as 0.
        params = self._vllm.SamplingParams(max_tokens=1, temperature=0.0, logprobs=TOP_LOGPROBS)
        wanted = [self.tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in candidates]
        outputs = self.llm.generate(self._prompts(prompts, templated), params, use_tqdm=False)
        probs = []
        for output in outputs:
            top = output.outputs[0].logprobs[0]
            probs.append({c: math.exp(top[t].logprob) if t in top else 0.0 for c, t in zip(candidates, wanted)})
        return probs

    def score(self, requests: Sequence[ScoreRequest], progress: Advance = None) -> list[ContinuationScore]:
        """Summed log-probability of each continuation after its prompt, from vLLM's prompt logprobs.

        Raises RuntimeError on an engine built with prefix caching: prompt logprobs of cached
        positions have come back wrong or dependent on request order (vLLM issues #3251, #8268,
        PR #42245), so a scoring engine is built with ``prefix_caching=False``
        (``open_engine(..., scoring=True)``).
        """
        if self.prefix_caching:
            raise RuntimeError(
                "VllmEngine.score reads prompt logprobs, which prefix caching can make depend on request order: "
                "build the engine with prefix_caching=False to score (open_engine(..., scoring=True))"
            )
        # prompt_logprobs=0 returns the log-probability of every actual prompt token.
        params = self._vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        starts = [len(self.tokenizer(r.prompt)["input_ids"]) for r in requests]
        outputs = self.llm.generate([r.prompt + r.continuation for r in requests], params, use_tqdm=False)
        scores = []
        for start, output in zip(starts, outputs):
            ids = output.prompt_token_ids
            logprobs = [output.prompt_logprobs[p][ids[p]].logprob for p in range(start, len(ids))]
            scores.append(ContinuationScore(logprob=sum(logprobs), tokens=len(logprobs)))
        if progress:
            progress(len(requests))
        return scores

    def close(self) -> None:
        """Free the model's GPU memory, so the next model of the stage can load in the same process.

        ``del llm`` alone does not reliably give the memory back. This follows vLLM's own
        ``cleanup_dist_env_and_memory`` (vllm/distributed/parallel_state.py): drop the LLM, then
        ``destroy_model_parallel()``, ``destroy_distributed_environment()``, ``gc.collect()`` and,
        on CUDA, ``torch.cuda.empty_cache()``. A second call does nothing.
        """
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        # Drop every reference this engine holds, so the LLM (and its engine core) is freed before the teardown below.
        self.llm = None
        del llm
        try:
            parallel_state = importlib.import_module("vllm.distributed.parallel_state")
        except ImportError:  # a vLLM without that module: nothing of it to tear down
            parallel_state = None
        for name in ("destroy_model_parallel", "destroy_distributed_environment"):
            teardown = getattr(parallel_state, name, None)
            if teardown is not None:
                teardown()
        import gc

        gc.collect()
        import torch  # lazy: vLLM images carry it, and the engines package must import without it

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
