"""The transformers engine's decoding: shared prefixes and deduplicated prompts give exactly what a plain run gives."""

from __future__ import annotations

import pytest
import torch

from seas_runtime.engines.decoding import Decoder, common_prefix

PAD, EOS = 0, 1


@pytest.fixture(scope="module")
def model():
    """A tiny randomly initialised Llama (no download), in float32 and eval mode."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=128, pad_token_id=PAD, eos_token_id=EOS, bos_token_id=2)
    return LlamaForCausalLM(config).eval()


def decoder(model, batch_size=3) -> Decoder:
    return Decoder(model, PAD, {EOS}, "cpu", batch_size)


# Prompts that share a prefix (like a chat template's), with one repeated and lengths that differ.
ROWS = [[2, 5, 6, 7, 10, 11], [2, 5, 6, 7, 12], [2, 5, 6, 7, 13, 14, 15, 16], [2, 5, 6, 7, 12], [2, 5, 6, 7, 20, 21, 22]]


@pytest.mark.parametrize("rows, length", [
    ([[1, 2, 3], [1, 2, 4]], 2), ([[1, 2], [1, 2, 3]], 1), ([[1, 2, 3]], 0), ([[5, 1], [6, 1]], 0), (ROWS, 4),
])
def test_common_prefix_leaves_every_row_a_token(rows, length):
    assert common_prefix(rows) == length


def reference_greedy(model, row: list[int], steps: int) -> list[int]:
    """Greedy decoding one prompt at a time, without any cache: the plain definition."""
    tokens = list(row)
    new = []
    with torch.inference_mode():
        for _ in range(steps):
            token = int(model(torch.tensor([tokens])).logits[0, -1].argmax())
            if token == EOS:
                break
            tokens.append(token)
            new.append(token)
    return new


def test_greedy_generation_matches_one_prompt_at_a_time_without_a_cache(model):
    expected = [reference_greedy(model, row, 6) for row in ROWS]
    for batch_size in (1, 2, 5):
        assert decoder(model, batch_size).generate(ROWS, 6, 0.0, 1.0, seeds=[0] * len(ROWS)) == expected


def test_sampling_is_per_row_reproducible_whatever_the_batching_and_repeats_differ(model):
    rows = [ROWS[0]] * 4 + [ROWS[2]] * 2
    seeds = [7 * 1_000_003 + i for i in range(len(rows))]
    first = decoder(model, 6).generate(rows, 8, 1.0, 0.9, seeds)
    assert decoder(model, 1).generate(rows, 8, 1.0, 0.9, seeds) == first  # another batching, the same answers
    assert len({tuple(t) for t in first[:4]}) > 1  # four samples of one prompt are not one sample four times
    assert decoder(model, 6).generate(rows, 8, 1.0, 0.9, [s + 1 for s in seeds]) != first


def test_scores_match_a_plain_forward_pass(model):
    prompts = [ROWS[0], ROWS[0], ROWS[1], ROWS[2]]
    continuations = [[30], [31, 32], [33, 34, 35], [36]]
    got = decoder(model, 2).score(prompts, continuations)
    for (logprob, count), prompt, cont in zip(got, prompts, continuations):
        with torch.inference_mode():
            logits = torch.log_softmax(model(torch.tensor([prompt + cont])).logits[0], dim=-1)
        expected = sum(logits[len(prompt) - 1 + i, t].item() for i, t in enumerate(cont))
        assert count == len(cont) and logprob == pytest.approx(expected, abs=1e-4)


def test_next_token_probabilities_match_a_plain_forward_pass(model):
    got = decoder(model, 2).next_token_probs(ROWS, [3, 4])
    for probs, row in zip(got, ROWS):
        with torch.inference_mode():
            expected = model(torch.tensor([row])).logits[0, -1].softmax(-1)
        assert probs == pytest.approx([expected[3].item(), expected[4].item()], abs=1e-5)


def test_left_padding_without_a_shared_prefix_is_harmless(model):
    rows = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]  # nothing shared: the short rows are padded on the left
    assert decoder(model, 3).generate(rows, 5, 0.0, 1.0, seeds=[0, 0, 0]) == [reference_greedy(model, row, 5) for row in rows]


@pytest.mark.parametrize("spread, top_p", [(5.0, 0.9), (1.0, 0.95), (0.01, 0.95), (3.0, 0.5)])  # 0.01: nearly flat, a nucleus wider than 1024
def test_the_nucleus_is_the_one_transformers_keeps(spread, top_p):
    from transformers.generation.logits_process import TopPLogitsWarper

    from seas_runtime.engines import decoding

    torch.manual_seed(1)
    logits = torch.randn(5000) * spread
    warped = TopPLogitsWarper(top_p=top_p)(None, (logits / 0.7)[None])[0]
    expected = set(torch.nonzero(warped > float("-inf")).flatten().tolist())
    drawn = {int(decoding.sample_top_p(logits, 0.7, top_p, torch.Generator().manual_seed(s))) for s in range(300)}
    assert drawn <= expected  # never outside the nucleus
    if len(expected) <= 20:
        assert drawn == expected  # and a small nucleus gets covered
