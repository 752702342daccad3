"""Batched decoding for the transformers engine, with the prefill work shared where prompts share it.

On a CPU the prompt (prefill) is most of a short generation's compute, and
the stages' prompts repeat themselves: every chat prompt of a model starts
with the same template and system prompt, an attack asks for several answers
to the same prompt, and a knowledge question is scored once per choice. So:

- the token prefix common to all rows of a call is run once and its key/value
  cache copied into every batch;
- identical prompts in a batch are prefilled once and their cache repeated;
- rows that reached end-of-text leave the batch, so finished answers cost nothing.

The rest of each prompt is left-padded *after* the shared prefix; the attention
mask hides the padding and the position ids skip it, so every row sees exactly
its own tokens at their own positions. Sampling draws from one random generator
per row, seeded from the call's seed and the row's index, so a row's answer
does not depend on which other rows share its batch, and several samples of one
prompt differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch

Advance = Optional[Callable[[int], None]]


def common_prefix(rows: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix all rows share, leaving every row at least one token of its own."""
    if len(rows) < 2:
        return 0
    limit = min(len(r) for r in rows) - 1
    first = rows[0]
    length = 0
    while length < limit and all(r[length] == first[length] for r in rows):
        length += 1
    return length


@dataclass
class Prefilled:
    """A batch after its prompts ran: the cache, the last position's logits, the mask and each row's next position."""

    cache: Any
    logits: torch.Tensor  # [rows, vocab]
    mask: torch.Tensor  # [rows, cached length]
    next_position: torch.Tensor  # [rows]

    def select(self, index: torch.Tensor) -> None:
        """Keep (or repeat) the rows at ``index``."""
        self.cache.reorder_cache(index)
        self.logits, self.mask, self.next_position = self.logits[index], self.mask[index], self.next_position[index]


def token_stats(logits: torch.Tensor, chosen: torch.Tensor, top_k: int = 10) -> list[tuple[float, float, float]]:
    """Per row: (log-probability of the chosen token, entropy in nats of the renormalised top-k, top token's probability)."""
    logprobs = torch.log_softmax(logits.float().cpu(), dim=-1)
    top = logprobs.topk(top_k, dim=-1).values.exp()
    top_norm = top / top.sum(dim=-1, keepdim=True)
    entropy = -(top_norm * top_norm.clamp_min(1e-30).log()).sum(dim=-1)
    picked = logprobs.gather(1, chosen.cpu()[:, None])[:, 0]
    return list(zip(picked.tolist(), entropy.tolist(), top[:, 0].tolist()))


NUCLEUS_CANDIDATES = 1024  # the nucleus is looked for among this many likeliest tokens first (a full sort only when it is wider)


def sample_top_p(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> torch.Tensor:
    """One token from ``logits`` (one row) at ``temperature`` with nucleus sampling, as transformers' TopPLogitsWarper defines it.

    A token is kept when the tokens more likely than it hold less than ``top_p`` of the mass (ties aside), so the
    likeliest token always stays. The nucleus is found among the likeliest ``NUCLEUS_CANDIDATES`` tokens, with
    probabilities normalised over the whole vocabulary; only when those hold less than ``top_p`` does a full sort run.
    """
    scaled = logits.float() / temperature
    probs = scaled.softmax(dim=-1)
    k = probs.numel() if top_p >= 1.0 else min(NUCLEUS_CANDIDATES, probs.numel())
    top, index = probs.topk(k)
    if k < probs.numel() and float(top.sum()) < top_p:
        top, index = probs.sort(descending=True)
    before = top.cumsum(dim=0) - top  # mass of the strictly likelier tokens
    keep = before < top_p if top_p < 1.0 else torch.ones_like(top, dtype=torch.bool)
    kept = top[keep]
    return index[keep][torch.multinomial(kept / kept.sum(), 1, generator=generator)[0]]


class Decoder:
    """Prefill, generation and scoring over a causal LM, ``batch_size`` rows at a time."""

    def __init__(self, model: Any, pad_id: int, eos_ids: set[int], device: str, batch_size: int) -> None:
        self.model, self.pad_id, self.eos_ids, self.device, self.batch_size = model, pad_id, eos_ids, device, max(1, batch_size)

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any, last_only: bool = True) -> Any:
        from transformers import DynamicCache

        return self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), position_ids=positions.to(self.device),
                          past_key_values=cache if cache is not None else DynamicCache(), use_cache=True,
                          logits_to_keep=1 if last_only else 0)

    def shared_prefix(self, rows: Sequence[Sequence[int]]) -> tuple[int, Any]:
        """(length, cache) of the prefix common to ``rows``, run once; (0, None) when there is none worth sharing."""
        length = common_prefix(rows)
        if length < 2:
            return 0, None
        ids = torch.tensor([list(rows[0][:length])])
        with torch.inference_mode():
            out = self._forward(ids, torch.ones_like(ids), torch.arange(length)[None], None)
        return length, out.past_key_values

    @staticmethod
    def _repeat(prefix_cache: Any, rows: int) -> Any:
        """A fresh cache holding the shared prefix once per row (None without a prefix)."""
        if prefix_cache is None:
            return None
        from transformers import DynamicCache

        cache = DynamicCache()
        for index, layer in enumerate(prefix_cache.layers):
            cache.update(layer.keys.expand(rows, -1, -1, -1).contiguous(), layer.values.expand(rows, -1, -1, -1).contiguous(), index)
        return cache

    def prefill(self, rows: Sequence[Sequence[int]], shared: int, prefix_cache: Any) -> Prefilled:
        """Run each row's tokens after the shared prefix (left-padded behind it); identical rows run once."""
        unique: dict[tuple[int, ...], int] = {}
        expand = [unique.setdefault(tuple(row), len(unique)) for row in rows]
        distinct = [list(row)[shared:] for row in unique]
        width = max(len(s) for s in distinct)
        ids = torch.full((len(distinct), width), self.pad_id, dtype=torch.long)
        own = torch.zeros((len(distinct), width), dtype=torch.long)
        for i, suffix in enumerate(distinct):
            ids[i, width - len(suffix):] = torch.tensor(suffix)
            own[i, width - len(suffix):] = 1
        mask = torch.cat([torch.ones((len(distinct), shared), dtype=torch.long), own], dim=1)
        positions = (mask.cumsum(1) - 1).clamp(min=0)[:, shared:]
        out = self._forward(ids, mask, positions, self._repeat(prefix_cache, len(distinct)))
        state = Prefilled(out.past_key_values, out.logits[:, -1, :].float(), mask, positions[:, -1] + 1)
        if len(distinct) < len(rows):
            state.select(torch.tensor(expand))
        return state

    def batches(self, rows: Sequence[Sequence[int]]) -> list[list[int]]:
        """Row indices grouped into batches of similar length (less padding), identical rows together."""
        order = sorted(range(len(rows)), key=lambda i: (len(rows[i]), tuple(rows[i])))
        return [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]

    def generate(self, rows: Sequence[Sequence[int]], max_new_tokens: int, temperature: float, top_p: float, seeds: Sequence[int],
                 progress: Advance = None, stats: Optional[list[list[tuple[float, float, float]]]] = None) -> list[list[int]]:
        """New tokens per row (end-of-text excluded): greedy at temperature 0, else nucleus sampling from each row's own seed.

        With ``stats`` (one empty list per row), each generated token also appends (its log-probability, the entropy of
        the renormalised top-10 distribution, the top token's probability), all under the model's own distribution.
        """
        outputs: list[list[int]] = [[] for _ in rows]
        shared, prefix_cache = self.shared_prefix(rows)
        with torch.inference_mode():
            for chunk in self.batches(rows):
                state = self.prefill([rows[i] for i in chunk], shared, prefix_cache)
                generators = [torch.Generator().manual_seed(seeds[i]) for i in chunk] if temperature > 0 else None
                active = list(range(len(chunk)))
                for step in range(max_new_tokens):
                    chosen = self._choose(state.logits, temperature, top_p, [generators[a] for a in active] if generators else None)
                    measured = token_stats(state.logits, chosen) if stats is not None else None
                    keep = []
                    for position, (row, token) in enumerate(zip(active, chosen.tolist())):
                        if token in self.eos_ids:
                            continue
                        outputs[chunk[row]].append(token)
                        if measured is not None:
                            stats[chunk[row]].append(measured[position])
                        keep.append(position)
                    if not keep or step == max_new_tokens - 1:
                        break
                    if len(keep) < len(active):
                        index = torch.tensor(keep)
                        state.select(index)
                        chosen = chosen[index]
                        active = [active[k] for k in keep]
                    state.mask = torch.cat([state.mask, torch.ones((len(active), 1), dtype=torch.long)], dim=1)
                    out = self._forward(chosen[:, None], state.mask, state.next_position[:, None], state.cache)
                    state.cache, state.logits, state.next_position = out.past_key_values, out.logits[:, -1, :].float(), state.next_position + 1
                if progress:
                    progress(len(chunk))
        return outputs

    @staticmethod
    def _choose(logits: torch.Tensor, temperature: float, top_p: float, generators: Optional[list[torch.Generator]]) -> torch.Tensor:
        if generators is None:
            return logits.argmax(dim=-1).cpu()
        return torch.stack([sample_top_p(row, temperature, top_p, g) for row, g in zip(logits.cpu(), generators)])

    def score(self, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], progress: Advance = None) -> list[tuple[float, int]]:
        """(summed log-probability, tokens) of each continuation after its prompt; each distinct prompt runs once."""
        results: list[tuple[float, int]] = [(0.0, 0)] * len(prompts)
        shared, prefix_cache = self.shared_prefix(prompts)
        with torch.inference_mode():
            for chunk in self.batches(prompts):
                state = self.prefill([prompts[i] for i in chunk], shared, prefix_cache)
                conts = [list(continuations[i]) for i in chunk]
                width = max(len(c) for c in conts)
                ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
                own = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, cont in enumerate(conts):
                    ids[row, : len(cont)] = torch.tensor(cont)
                    own[row, : len(cont)] = 1
                positions = state.next_position[:, None] + torch.arange(width)[None, :]
                out = self._forward(ids, torch.cat([state.mask, own], dim=1), positions, state.cache, last_only=False)
                # The prompt's last logits predict the first continuation token; each continuation position the next.
                logits = torch.cat([state.logits[:, None, :], out.logits[:, :-1, :].float()], dim=1)
                logprobs = torch.log_softmax(logits, dim=-1).gather(2, ids[:, :, None].to(logits.device))[:, :, 0]
                for row, cont in enumerate(conts):
                    results[chunk[row]] = (logprobs[row, : len(cont)].sum().item(), len(cont))
                if progress:
                    progress(len(chunk))
        return results

    def next_token_probs(self, rows: Sequence[Sequence[int]], tokens: Sequence[int]) -> list[list[float]]:
        """Per row, the probability of each of ``tokens`` as the next token."""
        results: list[list[float]] = [[] for _ in rows]
        shared, prefix_cache = self.shared_prefix(rows)
        with torch.inference_mode():
            for chunk in self.batches(rows):
                probs = self.prefill([rows[i] for i in chunk], shared, prefix_cache).logits.softmax(dim=-1)
                for row, index in enumerate(chunk):
                    results[index] = [probs[row, t].item() for t in tokens]
        return results
