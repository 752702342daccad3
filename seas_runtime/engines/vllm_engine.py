"""The vLLM engine: offline ``vllm.LLM`` with ``SamplingParams``, for GPUs.

Written against vLLM 0.33's documented offline API (``LLM(model=..., tensor_parallel_size=...)``,
``LLM.chat``, ``LLM.generate``, ``SamplingParams(prompt_logprobs=...)``). It cannot run on
CPU-only machines; tests exercise it with a stand-in ``vllm`` module (see README).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from .base import Advance, ContinuationScore, Engine, Messages, Sampling, ScoreRequest


TOP_LOGPROBS = 20


class VllmEngine(Engine):
    name = "vllm"

    def __init__(
        self,
        path: str,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        max_model_len: Optional[int] = None,
        seed: int = 0,
        token: Optional[str] = None,
    ) -> None:
        import vllm  # lazy: only GPU images carry it

        self._vllm = vllm
        kwargs = dict(model=path, dtype=dtype, tensor_parallel_size=tensor_parallel_size, seed=seed, enable_prefix_caching=True)
        if max_model_len:
            kwargs["max_model_len"] = max_model_len
        if token:
            kwargs["hf_token"] = token
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def _params(self, sampling: Sampling, **extra):
        return self._vllm.SamplingParams(
            temperature=sampling.temperature, top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
            max_tokens=sampling.max_new_tokens, seed=sampling.seed, **extra,
        )

    def chat(self, conversations: Sequence[Messages], sampling: Sampling, progress: Advance = None) -> list[str]:
        outputs = self.llm.chat(list(conversations), self._params(sampling), use_tqdm=False)
        if progress:
            progress(len(outputs))
        return [o.outputs[0].text.strip() for o in outputs]

    def _prompts(self, prompts: Sequence[str], templated: bool) -> list:
        # A templated prompt already holds its special tokens: hand vLLM the token ids so it adds none.
        if not templated:
            return list(prompts)
        return [{"prompt_token_ids": self.tokenizer(p, add_special_tokens=False)["input_ids"]} for p in prompts]

    def complete(self, prompts: Sequence[str], sampling: Sampling, progress: Advance = None, templated: bool = False) -> list[str]:
        outputs = self.llm.generate(self._prompts(prompts, templated), self._params(sampling), use_tqdm=False)
        if progress:
            progress(len(outputs))
        return [o.outputs[0].text.strip() for o in outputs]

    def first_token_probs(self, prompts: Sequence[str], candidates: Sequence[str], templated: bool = False) -> list[dict[str, float]]:
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
        del self.llm
