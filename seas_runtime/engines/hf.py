"""The transformers engine: batched generation and scoring on CPU or GPU (the decoding itself is in ``decoding``)."""

from __future__ import annotations

import logging
from typing import Optional, Sequence

from ..models import load_causal_lm, pick_device
from ..settings import ModelRef
from .base import Advance, ContinuationScore, Engine, Generation, Messages, Sampling, ScoreRequest, row_seeds
from .decoding import Decoder

log = logging.getLogger(__name__)


class TransformersEngine(Engine):
    """Generation and scoring with ``transformers``; the CPU path of the embedded default."""

    name = "transformers"

    def __init__(self, ref: ModelRef, cache: Optional[str] = None, batch_size: int = 32, device: Optional[str] = None) -> None:
        self.device = device or pick_device()
        self.batch_size = batch_size
        self.tokenizer, model, self.dtype = load_causal_lm(ref, cache, self.device)
        self.model = model.to(self.device)
        self.model.eval()
        eos = self.model.generation_config.eos_token_id
        eos_ids = {*(eos if isinstance(eos, list) else [eos] if eos is not None else []), self.tokenizer.eos_token_id} - {None}
        self.decoder = Decoder(self.model, self.tokenizer.pad_token_id, eos_ids, self.device, batch_size)
        log.info("loaded %s on %s as %s", ref.model, self.device, self.dtype)

    def _template(self, messages: Messages) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def chat(self, conversations: Sequence[Messages], sampling: Sampling, progress: Advance = None) -> list[str]:
        return self._generate([self._template(c) for c in conversations], sampling, progress)

    def complete(self, prompts: Sequence[str], sampling: Sampling, progress: Advance = None, templated: bool = False) -> list[str]:
        return self._generate(list(prompts), sampling, progress, add_special_tokens=not templated)

    def _generate(self, texts: list[str], sampling: Sampling, progress: Advance, add_special_tokens: bool = False) -> list[str]:
        tok = self.tokenizer
        rows = [tok(text, add_special_tokens=add_special_tokens)["input_ids"] for text in texts]
        new = self.decoder.generate(rows, sampling.max_new_tokens, sampling.temperature, sampling.top_p, row_seeds(sampling.seed, len(rows)), progress)
        return [tok.decode(tokens, skip_special_tokens=True).strip() for tokens in new]

    def chat_details(self, conversations: Sequence[Messages], sampling: Sampling, progress: Advance = None) -> list[Generation]:
        tok = self.tokenizer
        rows = [tok(self._template(c), add_special_tokens=False)["input_ids"] for c in conversations]
        seeds = row_seeds(sampling.seed, len(rows))
        stats: list[list[tuple[float, float, float]]] = [[] for _ in rows]
        new = self.decoder.generate(rows, sampling.max_new_tokens, sampling.temperature, sampling.top_p, seeds, progress, stats=stats)
        return [Generation(text=tok.decode(tokens, skip_special_tokens=True).strip(), logprobs=tuple(s[0] for s in row_stats),
                           entropies=tuple(s[1] for s in row_stats), top_probs=tuple(s[2] for s in row_stats))
                for tokens, row_stats in zip(new, stats)]

    def score(self, requests: Sequence[ScoreRequest], progress: Advance = None) -> list[ContinuationScore]:
        tok = self.tokenizer
        prompts = [tok(r.prompt, add_special_tokens=True)["input_ids"] for r in requests]
        continuations = [tok(r.continuation, add_special_tokens=False)["input_ids"] for r in requests]
        return [ContinuationScore(logprob=lp, tokens=n) for lp, n in self.decoder.score(prompts, continuations, progress)]

    def first_token_probs(self, prompts: Sequence[str], candidates: Sequence[str], templated: bool = False) -> list[dict[str, float]]:
        tok = self.tokenizer
        rows = [tok(p, add_special_tokens=not templated)["input_ids"] for p in prompts]
        wanted = [tok(c, add_special_tokens=False)["input_ids"][0] for c in candidates]
        return [dict(zip(candidates, probs)) for probs in self.decoder.next_token_probs(rows, wanted)]

    def close(self) -> None:
        # The decoder holds the model too: drop both or the weights stay alive.
        del self.model, self.decoder
        import gc

        gc.collect()
