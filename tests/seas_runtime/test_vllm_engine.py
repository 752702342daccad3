"""The vLLM engine against a stand-in ``vllm`` module (vLLM itself needs a GPU).

The stand-in records what the engine passes to ``vllm.LLM`` and
``vllm.SamplingParams`` and answers with objects shaped like vLLM's
``RequestOutput`` (``.outputs[0].text``, ``.prompt_token_ids``,
``.prompt_logprobs``: a list whose first entry is None and whose others map
token id -> an object with ``.logprob``).
"""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest

from seas_runtime.engines import choose_engine
from seas_runtime.engines.base import ContinuationScore, Sampling, ScoreRequest

BOS = 1


def tokenize(text: str) -> list[int]:
    """One token per character, after BOS (as a Llama tokenizer adds BOS)."""
    return [BOS] + [ord(c) for c in text]


def token_logprob(token_id: int) -> float:
    return -(token_id % 7 + 1) / 10.0


class FakeTokenizer:
    def __call__(self, text: str, **kwargs):
        return {"input_ids": tokenize(text)}


class FakeSamplingParams:
    created: list["FakeSamplingParams"] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        FakeSamplingParams.created.append(self)


class FakeLLM:
    instances: list["FakeLLM"] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls: list[tuple[str, object, object, dict]] = []
        FakeLLM.instances.append(self)

    def get_tokenizer(self):
        return FakeTokenizer()

    def chat(self, messages, sampling_params=None, **kwargs):
        self.calls.append(("chat", messages, sampling_params, kwargs))
        return [SimpleNamespace(outputs=[SimpleNamespace(text=f"  reply to {m[-1]['content']}\n")]) for m in messages]

    def generate(self, prompts, sampling_params=None, **kwargs):
        self.calls.append(("generate", prompts, sampling_params, kwargs))
        outputs = []
        for prompt in prompts:
            ids = tokenize(prompt)
            prompt_logprobs = None
            if sampling_params.kwargs.get("prompt_logprobs") is not None:
                # The actual token plus a distractor with a higher log-probability:
                # the score must take the actual token's.
                prompt_logprobs = [None] + [
                    {ids[p]: SimpleNamespace(logprob=token_logprob(ids[p]), rank=2), 0: SimpleNamespace(logprob=-0.01, rank=1)}
                    for p in range(1, len(ids))
                ]
            outputs.append(SimpleNamespace(outputs=[SimpleNamespace(text=f" completion of {prompt[-5:]} ")], prompt_token_ids=ids, prompt_logprobs=prompt_logprobs))
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = FakeSamplingParams
    FakeLLM.instances = []
    FakeSamplingParams.created = []
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def make_engine(**kwargs):
    from seas_runtime.engines.vllm_engine import VllmEngine

    return VllmEngine("/models/target", **kwargs)


def test_engine_passes_its_settings_to_llm(fake_vllm):
    engine = make_engine(dtype="bfloat16", tensor_parallel_size=4, max_model_len=4096, seed=11, token="hf_secret")
    (llm,) = FakeLLM.instances
    assert engine.llm is llm
    assert llm.kwargs["model"] == "/models/target"
    assert llm.kwargs["dtype"] == "bfloat16"
    assert llm.kwargs["tensor_parallel_size"] == 4
    assert llm.kwargs["max_model_len"] == 4096
    assert llm.kwargs["seed"] == 11
    assert llm.kwargs["hf_token"] == "hf_secret"


def test_engine_leaves_unset_options_to_vllm(fake_vllm):
    make_engine()
    (llm,) = FakeLLM.instances
    assert llm.kwargs["tensor_parallel_size"] == 1
    assert llm.kwargs["dtype"] == "auto"
    assert "max_model_len" not in llm.kwargs  # the model's own context length
    assert "hf_token" not in llm.kwargs


def test_chat_uses_llm_chat_with_the_sampling_settings(fake_vllm):
    engine = make_engine()
    conversations = [[{"role": "user", "content": "hello"}], [{"role": "user", "content": "bye"}]]
    seen = []
    replies = engine.chat(conversations, Sampling(temperature=0.7, top_p=0.9, max_new_tokens=33, seed=5), progress=seen.append)
    assert replies == ["reply to hello", "reply to bye"]  # stripped, in input order
    ((kind, messages, params, kwargs),) = engine.llm.calls
    assert kind == "chat"
    assert messages == conversations
    assert params.kwargs == {"temperature": 0.7, "top_p": 0.9, "max_tokens": 33, "seed": 5}
    assert sum(seen) == 2


def test_greedy_chat_does_not_truncate_the_distribution(fake_vllm):
    engine = make_engine()
    engine.chat([[{"role": "user", "content": "x"}]], Sampling(temperature=0.0, top_p=0.5, max_new_tokens=8, seed=0))
    params = engine.llm.calls[0][2]
    assert params.kwargs["temperature"] == 0.0
    assert params.kwargs["top_p"] == 1.0


def test_complete_uses_llm_generate_on_raw_prompts(fake_vllm):
    engine = make_engine()
    seen = []
    out = engine.complete(["judge this: abcde"], Sampling(temperature=0.0, max_new_tokens=16, seed=3), progress=seen.append)
    assert out == ["completion of abcde"]
    ((kind, prompts, params, _),) = engine.llm.calls
    assert kind == "generate"
    assert prompts == ["judge this: abcde"]
    assert params.kwargs["max_tokens"] == 16
    assert params.kwargs["temperature"] == 0.0
    assert params.kwargs["seed"] == 3
    assert sum(seen) == 1


def test_score_sums_the_continuation_tokens_prompt_logprobs(fake_vllm):
    engine = make_engine()
    requests = [ScoreRequest("Question: 2+2?\nAnswer:", " 4"), ScoreRequest("Q?\nAnswer:", " Paris")]
    seen = []
    scores = engine.score(requests, progress=seen.append)
    ((kind, prompts, params, _),) = engine.llm.calls
    assert kind == "generate"
    assert prompts == ["Question: 2+2?\nAnswer: 4", "Q?\nAnswer: Paris"]  # one pass over prompt + continuation
    assert params.kwargs["prompt_logprobs"] == 0
    assert params.kwargs["max_tokens"] == 1
    for request, score in zip(requests, scores):
        expected = sum(token_logprob(ord(c)) for c in request.continuation)
        assert isinstance(score, ContinuationScore)
        assert score.tokens == len(request.continuation)
        assert score.logprob == pytest.approx(expected)
    assert sum(seen) == 2


def test_vllm_is_imported_lazily(monkeypatch):
    # The engines package must import without vLLM installed (operator and CPU images).
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes "import vllm" raise ImportError
    import importlib

    import seas_runtime.engines.vllm_engine as module

    importlib.reload(module)
    with pytest.raises(ImportError):
        module.VllmEngine("/models/x")


@pytest.mark.parametrize(
    "requested, gpu, installed, expected",
    [
        ("auto", True, True, "vllm"),
        ("auto", True, False, "transformers"),
        ("auto", False, True, "transformers"),
        ("auto", False, False, "transformers"),
        ("vllm", False, False, "vllm"),
        ("transformers", True, True, "transformers"),
    ],
)
def test_choose_engine(requested, gpu, installed, expected):
    assert choose_engine(requested, gpu, installed) == expected
