"""The transformers engine: batched, left-padded generation on CPU or GPU."""

from __future__ import annotations

import logging
from typing import Optional, Sequence

from ..models import load_causal_lm, pick_device
from ..settings import ModelRef
from .base import Advance, ContinuationScore, Engine, Messages, Sampling, ScoreRequest, batches

log = logging.getLogger(__name__)


class TransformersEngine(Engine):
    """Generation and scoring with ``transformers``; the CPU path of the embedded default."""

    name = "transformers"

    def __init__(self, ref: ModelRef, cache: Optional[str] = None, batch_size: int = 32, device: Optional[str] = None) -> None:
        import torch

        self.device = device or pick_device()
        self.batch_size = batch_size
        self.tokenizer, model, self.dtype = load_causal_lm(ref, cache, self.device)
        self.model = model.to(self.device)
        self.model.eval()
        self._body = getattr(self.model, self.model.base_model_prefix)
        self._head = self.model.get_output_embeddings()
        self._torch = torch
        log.info("loaded %s on %s as %s", ref.model, self.device, self.dtype)

    def _template(self, messages: Messages) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def chat(self, conversations: Sequence[Messages], sampling: Sampling, progress: Advance = None) -> list[str]:
        return self._generate([self._template(c) for c in conversations], sampling, progress)

    def complete(self, prompts: Sequence[str], sampling: Sampling, progress: Advance = None, templated: bool = False) -> list[str]:
        return self._generate(list(prompts), sampling, progress, add_special_tokens=not templated)

    def _generate(self, texts: list[str], sampling: Sampling, progress: Advance, add_special_tokens: bool = False) -> list[str]:
        torch = self._torch
        tok = self.tokenizer
        tok.padding_side = "left"
        # Similar lengths in one batch waste less compute on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        outputs: list[str] = [""] * len(texts)
        for number, (_, chunk) in enumerate(batches(order, self.batch_size)):
            encoded = tok([texts[i] for i in chunk], return_tensors="pt", padding=True, add_special_tokens=add_special_tokens).to(self.device)
            torch.manual_seed(sampling.seed * 100003 + number)  # reproducible per batch
            greedy = sampling.temperature <= 0
            with torch.inference_mode():
                generated = self.model.generate(
                    **encoded,
                    do_sample=not greedy,
                    temperature=None if greedy else sampling.temperature,
                    top_p=None if greedy else sampling.top_p,
                    top_k=None,
                    max_new_tokens=sampling.max_new_tokens,
                    pad_token_id=tok.pad_token_id,
                )
            new_tokens = generated[:, encoded["input_ids"].shape[1] :]
            for index, text in zip(chunk, tok.batch_decode(new_tokens, skip_special_tokens=True)):
                outputs[index] = text.strip()
            if progress:
                progress(len(chunk))
        return outputs

    def score(self, requests: Sequence[ScoreRequest], progress: Advance = None) -> list[ContinuationScore]:
        torch = self._torch
        tok = self.tokenizer
        rows = []
        for request in requests:
            prompt_ids = tok(request.prompt, add_special_tokens=True)["input_ids"]
            cont_ids = tok(request.continuation, add_special_tokens=False)["input_ids"]
            rows.append((prompt_ids, cont_ids))
        results: dict[int, ContinuationScore] = {}
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))
        for _, chunk in batches(order, self.batch_size):
            width = max(len(rows[i][0]) + len(rows[i][1]) for i in chunk)
            ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, index in enumerate(chunk):
                sequence = rows[index][0] + rows[index][1]
                ids[row, : len(sequence)] = torch.tensor(sequence)
                mask[row, : len(sequence)] = 1
            with torch.inference_mode():
                # Run the body only and apply the LM head where continuation tokens are predicted:
                # the head is a fifth of a small model's compute and most positions are prompt.
                hidden = self._body(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).last_hidden_state
            for row, index in enumerate(chunk):
                prompt_ids, cont_ids = rows[index]
                start = len(prompt_ids)
                # hidden state at position p predicts token p+1
                with torch.inference_mode():
                    logits = self._head(hidden[row, start - 1 : start - 1 + len(cont_ids)])
                logprobs = torch.log_softmax(logits.float(), dim=-1)
                target = torch.tensor(cont_ids, device=logprobs.device).unsqueeze(1)
                results[index] = ContinuationScore(logprob=logprobs.gather(1, target).sum().item(), tokens=len(cont_ids))
            if progress:
                progress(len(chunk))
        return [results[i] for i in range(len(rows))]

    def first_token_probs(self, prompts: Sequence[str], candidates: Sequence[str], templated: bool = False) -> list[dict[str, float]]:
        torch = self._torch
        tok = self.tokenizer
        rows = [tok(p, add_special_tokens=not templated)["input_ids"] for p in prompts]
        wanted = [tok(c, add_special_tokens=False)["input_ids"][0] for c in candidates]
        results: dict[int, dict[str, float]] = {}
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        for _, chunk in batches(order, self.batch_size):
            # Right-padded, so every row keeps positions 0..len-1 without position ids; read each row at its last token.
            width = max(len(rows[i]) for i in chunk)
            ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, index in enumerate(chunk):
                ids[row, : len(rows[index])] = torch.tensor(rows[index])
                mask[row, : len(rows[index])] = 1
            with torch.inference_mode():
                hidden = self._body(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).last_hidden_state
                last = torch.tensor([len(rows[i]) - 1 for i in chunk], device=hidden.device)
                logits = self._head(hidden[torch.arange(len(chunk), device=hidden.device), last])
                probs = torch.softmax(logits.float(), dim=-1)
            for row, index in enumerate(chunk):
                results[index] = {c: probs[row, t].item() for c, t in zip(candidates, wanted)}
        return [results[i] for i in range(len(rows))]

    def close(self) -> None:
        # The body and head are views into the model: drop them too or the weights stay alive.
        del self.model, self._body, self._head
        import gc

        gc.collect()
