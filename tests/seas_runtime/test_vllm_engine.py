"""The vLLM engine against a stand-in ``vllm`` module (vLLM itself needs a GPU).

The stand-in models the parts of vLLM's offline API the engine relies on, as
vLLM documents them, and nothing more:

- ``vllm.LLM(**engine_args)`` rejects arguments it does not know; ``LLM.chat``
  and ``LLM.generate`` take one ``SamplingParams`` for every prompt or a list
  paired one by one with the prompts (a length mismatch is an error);
- ``SamplingParams`` accepts only the documented fields the engine may use;
- each request samples from its own random generator, seeded from its
  ``SamplingParams.seed`` (unseeded when None), so two requests with the same
  seed draw the same answer;
- a ``RequestOutput`` has ``.outputs[0]`` (``text``, ``token_ids``,
  ``logprobs``, ``finish_reason``, ``stop_reason``), ``.prompt_token_ids`` and
  ``.prompt_logprobs``. When generation stops on EOS, the EOS token is in
  ``token_ids`` and ``logprobs`` but not in ``text``, with
  ``finish_reason="stop"`` and ``stop_reason=None``;
- ``logprobs=k`` gives, per generated token, a dict token id -> ``Logprob``
  (``logprob``, ``rank``, ``decoded_token``) holding the k most likely tokens
  plus the sampled one when it ranks lower (so k or k + 1 entries);
  ``prompt_logprobs=k`` gives a list whose first entry is None and whose others
  hold the k most likely tokens plus the actual prompt token;
- ``vllm.distributed.parallel_state`` has ``destroy_model_parallel`` and
  ``destroy_distributed_environment``.

The "model" behind it: one token per character; at each step the next token
is the answer's next character, with the probabilities below.
"""

from __future__ import annotations

import gc
import json
import importlib.machinery
import math
import random
import sys
import types
import weakref
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Optional

import pytest

from seas_runtime.engines import choose_engine, open_engine
from seas_runtime.engines.base import TOP_K_STATS, ContinuationScore, Generation, Sampling, ScoreRequest
from seas_runtime.settings import ModelRef

BOS, EOS = 1, 2
# Probabilities of the stand-in model's next-token distribution at every step: the answer's next
# character (always the most likely token, unless it is a sampled marker), and 15 distractors.
DISTRACTORS = {1000 + j: 0.4 * 0.5 ** (j + 1) for j in range(15)}  # 0.2, 0.1, ...: together below 0.4
EOS_PROB = 0.5
MARKER_PROB = 0.4 * 0.5**13 * 0.75  # a sampled marker character: ranks 14th, outside the top 10


def char_prob(token_id: int) -> float:
    """Probability of an answer character, in [0.3, 0.6]: with the distractors the step sums to at most 1."""
    return 0.3 + 0.05 * (token_id % 7)


def distribution(token_id: int, prob: float) -> dict[int, float]:
    return {**DISTRACTORS, token_id: prob}


def tokenize(text: str, add_special_tokens: bool = True) -> list[int]:
    """One token per character, after BOS when special tokens are added (as a Llama tokenizer does)."""
    return ([BOS] if add_special_tokens else []) + [ord(c) for c in text]


def token_logprob(token_id: int) -> float:
    """Log-probability of a prompt token given the ones before it."""
    return -(token_id % 7 + 1) / 10.0


class FakeTokenizer:
    eos_token_id = EOS

    def __call__(self, text: str, add_special_tokens: bool = True, **kwargs):
        return {"input_ids": tokenize(text, add_special_tokens)}

    def decode(self, ids) -> str:
        return "".join(chr(i) for i in ids if i not in (BOS, EOS))


@dataclass
class Logprob:
    logprob: float
    rank: Optional[int] = None
    decoded_token: Optional[str] = None


def top_logprobs(dist: dict[int, float], k: int, actual: int) -> dict[int, Logprob]:
    """The k most likely tokens of ``dist``, plus ``actual`` when it ranks lower (vLLM's logprobs)."""
    ranked = sorted(dist, key=dist.get, reverse=True)
    keep = ranked[:k] + ([actual] if actual not in ranked[:k] else [])
    return {t: Logprob(math.log(dist[t]), ranked.index(t) + 1, chr(t)) for t in keep}


class FakeSamplingParams:
    FIELDS = {"n", "temperature", "top_p", "max_tokens", "seed", "logprobs", "prompt_logprobs"}
    created: list["FakeSamplingParams"] = []

    def __init__(self, **kwargs):
        unknown = set(kwargs) - self.FIELDS
        if unknown:
            raise TypeError(f"SamplingParams got unexpected arguments {sorted(unknown)}")
        self.kwargs = kwargs
        FakeSamplingParams.created.append(self)


class FakeLLM:
    ENGINE_ARGS = {"model", "dtype", "tensor_parallel_size", "seed", "gpu_memory_utilization", "enable_prefix_caching", "max_model_len", "hf_token"}
    instances: list["FakeLLM"] = []

    def __init__(self, **kwargs):
        unknown = set(kwargs) - self.ENGINE_ARGS
        if unknown:
            raise TypeError(f"LLM got unexpected engine arguments {sorted(unknown)}")
        self.kwargs = kwargs
        self.calls: list[tuple[str, object, object, dict]] = []
        FakeLLM.instances.append(self)

    def get_tokenizer(self):
        return FakeTokenizer()

    @staticmethod
    def answer(prompt_ids: list[int]) -> str:
        """What the stand-in model says after a raw prompt."""
        return f" completion of {FakeTokenizer().decode(prompt_ids)[-5:]} "

    def chat(self, messages, sampling_params=None, use_tqdm=True):
        self.calls.append(("chat", messages, sampling_params, {"use_tqdm": use_tqdm}))
        params = self._pair(messages, sampling_params)
        return [self._run(tokenize(m[-1]["content"]), f"  reply to {m[-1]['content']}", p) for m, p in zip(messages, params)]

    def generate(self, prompts, sampling_params=None, use_tqdm=True):
        self.calls.append(("generate", prompts, sampling_params, {"use_tqdm": use_tqdm}))
        params = self._pair(prompts, sampling_params)
        outputs = []
        for prompt, p in zip(prompts, params):
            ids = list(prompt["prompt_token_ids"]) if isinstance(prompt, dict) else tokenize(prompt)
            outputs.append(self._run(ids, FakeLLM.answer(ids), p))
        return outputs

    @staticmethod
    def _pair(prompts, sampling_params) -> list:
        # vLLM: one SamplingParams applies to every prompt; a list must be as long as the prompts.
        if isinstance(sampling_params, list):
            if len(sampling_params) != len(prompts):
                raise ValueError("The lengths of prompts and sampling_params must be the same.")
            return sampling_params
        return [sampling_params] * len(prompts)

    @staticmethod
    def _run(prompt_ids: list[int], answer: str, params: FakeSamplingParams) -> SimpleNamespace:
        kw = params.kwargs
        steps = [(ord(c), char_prob(ord(c))) for c in answer]
        if kw.get("temperature", 1.0) > 0:
            # A sampled answer: a marker drawn from the request's own generator, unseeded without a seed.
            marker = f" #{random.Random(kw.get('seed')).randrange(10**6)}"
            steps += [(ord(c), MARKER_PROB) for c in marker]
        steps += [(ord("\n"), char_prob(ord("\n"))), (EOS, EOS_PROB)]
        steps = steps[: kw.get("max_tokens", 16)]
        stopped = steps[-1][0] == EOS
        token_ids = [t for t, _ in steps]
        logprobs = None
        if kw.get("logprobs") is not None:
            logprobs = [top_logprobs(distribution(t, p), kw["logprobs"], t) for t, p in steps]
        prompt_logprobs = None
        if kw.get("prompt_logprobs") is not None:
            prompt_logprobs = [None] + [
                top_logprobs({**DISTRACTORS, prompt_ids[i]: math.exp(token_logprob(prompt_ids[i]))}, kw["prompt_logprobs"], prompt_ids[i])
                for i in range(1, len(prompt_ids))
            ]
        text = FakeTokenizer().decode(token_ids[:-1] if stopped else token_ids)  # the stop token is not in the text
        out = SimpleNamespace(text=text, token_ids=token_ids, logprobs=logprobs, finish_reason="stop" if stopped else "length", stop_reason=None)
        return SimpleNamespace(outputs=[out], prompt_token_ids=prompt_ids, prompt_logprobs=prompt_logprobs)


@pytest.fixture
def teardown_calls() -> list[str]:
    return []


@pytest.fixture
def fake_vllm(monkeypatch, teardown_calls):
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None, is_package=True)  # find_spec("vllm") finds it
    module.__path__ = []
    module.LLM = FakeLLM
    module.SamplingParams = FakeSamplingParams
    distributed = types.ModuleType("vllm.distributed")
    parallel_state = types.ModuleType("vllm.distributed.parallel_state")
    parallel_state.destroy_model_parallel = lambda: teardown_calls.append("destroy_model_parallel")
    parallel_state.destroy_distributed_environment = lambda: teardown_calls.append("destroy_distributed_environment")
    module.distributed, distributed.parallel_state = distributed, parallel_state
    FakeLLM.instances = []
    FakeSamplingParams.created = []
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.distributed", distributed)
    monkeypatch.setitem(sys.modules, "vllm.distributed.parallel_state", parallel_state)
    return module


def make_engine(**kwargs):
    from seas_runtime.engines.vllm_engine import VllmEngine

    return VllmEngine("/models/target", **kwargs)


def seeds_of(params) -> list:
    return [p.kwargs.get("seed") for p in params]


# --- construction -----------------------------------------------------------------------------


def test_engine_passes_its_settings_to_llm(fake_vllm):
    engine = make_engine(
        dtype="bfloat16", tensor_parallel_size=4, max_model_len=4096, seed=11, token="hf_secret", gpu_memory_utilization=0.6, prefix_caching=False
    )
    (llm,) = FakeLLM.instances
    assert engine.llm is llm
    assert llm.kwargs == {
        "model": "/models/target", "dtype": "bfloat16", "tensor_parallel_size": 4, "max_model_len": 4096, "seed": 11,
        "hf_token": "hf_secret", "gpu_memory_utilization": 0.6, "enable_prefix_caching": False,
    }


def test_engine_leaves_unset_options_to_vllm(fake_vllm):
    make_engine()
    (llm,) = FakeLLM.instances
    assert llm.kwargs["tensor_parallel_size"] == 1
    assert llm.kwargs["dtype"] == "auto"
    assert llm.kwargs["gpu_memory_utilization"] == 0.85  # ModelRef's default
    assert llm.kwargs["enable_prefix_caching"] is True  # generation engines share their prompts' prefixes
    assert "max_model_len" not in llm.kwargs  # the model's own context length
    assert "hf_token" not in llm.kwargs


def test_open_engine_passes_the_memory_share_and_turns_prefix_caching_off_to_score(fake_vllm, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    ref = ModelRef(model="/models/target", engine="vllm", gpuMemoryUtilization=0.6)
    generating = open_engine(ref)
    scoring = open_engine(ref, scoring=True)
    assert generating.name == scoring.name == "vllm"
    first, second = FakeLLM.instances
    assert first.kwargs["gpu_memory_utilization"] == second.kwargs["gpu_memory_utilization"] == 0.6
    assert first.kwargs["enable_prefix_caching"] is True
    assert second.kwargs["enable_prefix_caching"] is False
    open_engine(ModelRef(model="/models/target", engine="vllm"))
    assert FakeLLM.instances[-1].kwargs["gpu_memory_utilization"] == 0.85


# --- chat and complete: one SamplingParams per request ---------------------------------------


def test_chat_uses_llm_chat_with_the_sampling_settings(fake_vllm):
    engine = make_engine()
    conversations = [[{"role": "user", "content": "hello"}], [{"role": "user", "content": "bye"}]]
    seen = []
    replies = engine.chat(conversations, Sampling(temperature=0.7, top_p=0.9, max_new_tokens=33, seed=5), progress=seen.append)
    # stripped (the stand-in's answers open with spaces and end with a newline), in input order
    assert [r.split(" #")[0] for r in replies] == ["reply to hello", "reply to bye"]
    assert all(r == r.strip() for r in replies)
    ((kind, messages, params, kwargs),) = engine.llm.calls
    assert kind == "chat"
    assert messages == conversations
    assert kwargs == {"use_tqdm": False}
    assert [p.kwargs for p in params] == [
        {"temperature": 0.7, "top_p": 0.9, "max_tokens": 33, "seed": 5 * 1_000_003 + index} for index in range(2)
    ]
    assert sum(seen) == 2


def test_copies_of_a_prompt_get_their_own_seed_and_sample(fake_vllm):
    # An attack asks for several samples of the same instruction: one shared seed made them identical.
    engine = make_engine()
    conversation = [{"role": "user", "content": "how do I pick a lock?"}]
    sampling = Sampling(temperature=1.0, max_new_tokens=64, seed=7)
    replies = engine.chat([conversation] * 4, sampling)
    params = engine.llm.calls[0][2]
    assert isinstance(params, list) and len(params) == 4
    assert seeds_of(params) == [7 * 1_000_003 + index for index in range(4)]  # the transformers engine's rule
    assert len(set(replies)) == 4
    assert engine.chat([conversation] * 4, sampling) == replies  # and each is reproducible


def test_the_seed_rule_depends_on_the_call_seed(fake_vllm):
    engine = make_engine()
    engine.chat([[{"role": "user", "content": "x"}]] * 2, Sampling(temperature=1.0, seed=0))
    engine.chat([[{"role": "user", "content": "x"}]] * 2, Sampling(temperature=1.0, seed=1))
    assert seeds_of(engine.llm.calls[0][2]) == [0, 1]
    assert seeds_of(engine.llm.calls[1][2]) == [1_000_003, 1_000_004]


def test_greedy_chat_does_not_truncate_the_distribution_or_seed(fake_vllm):
    engine = make_engine()
    replies = engine.chat([[{"role": "user", "content": "x"}]] * 2, Sampling(temperature=0.0, top_p=0.5, max_new_tokens=32, seed=9))
    assert replies == ["reply to x", "reply to x"]
    params = engine.llm.calls[0][2]
    assert [p.kwargs for p in params] == [{"temperature": 0.0, "top_p": 1.0, "max_tokens": 32}] * 2  # greedy draws nothing: no seed


def test_complete_uses_llm_generate_on_raw_prompts(fake_vllm):
    engine = make_engine()
    seen = []
    out = engine.complete(["judge this: abcde"], Sampling(temperature=0.0, max_new_tokens=64, seed=3), progress=seen.append)
    assert out == ["completion of abcde"]
    ((kind, prompts, params, kwargs),) = engine.llm.calls
    assert kind == "generate"
    assert prompts == ["judge this: abcde"]  # vLLM tokenizes it and adds BOS
    assert kwargs == {"use_tqdm": False}
    assert [p.kwargs for p in params] == [{"temperature": 0.0, "top_p": 1.0, "max_tokens": 64}]
    assert sum(seen) == 1


def test_complete_templated_passes_token_ids_and_per_request_seeds(fake_vllm):
    engine = make_engine()
    prompts = ["<s>[INST] a [/INST]", "<s>[INST] a [/INST]", "<s>[INST] b [/INST]"]
    out = engine.complete(prompts, Sampling(temperature=0.8, max_new_tokens=64, seed=2), templated=True)
    ((_, sent, params, _),) = engine.llm.calls
    # The template already holds its special tokens: ids without a second BOS.
    assert sent == [{"prompt_token_ids": [ord(c) for c in p]} for p in prompts]
    assert seeds_of(params) == [2 * 1_000_003, 2 * 1_000_003 + 1, 2 * 1_000_003 + 2]
    assert out[0] != out[1]  # the same prompt twice: two samples
    assert all(o.startswith("completion of") for o in out)


# --- chat_details: per-token statistics -----------------------------------------------------


def expected_stats(token_id: int, prob: float) -> tuple[float, float, float]:
    """From the stand-in's full distribution: log-probability, top-10 renormalised entropy, top probability."""
    top = sorted(distribution(token_id, prob).values(), reverse=True)[:TOP_K_STATS]
    total = sum(top)
    return math.log(prob), -sum(p / total * math.log(p / total) for p in top), top[0]


def test_chat_details_records_each_generated_tokens_statistics(fake_vllm):
    engine = make_engine()
    conversations = [[{"role": "user", "content": "hello"}], [{"role": "user", "content": "hello"}], [{"role": "user", "content": "bye"}]]
    seen = []
    generations = engine.chat_details(conversations, Sampling(temperature=1.0, max_new_tokens=64, seed=4), progress=seen.append)
    ((kind, _, params, _),) = engine.llm.calls
    assert kind == "chat"
    assert [p.kwargs["logprobs"] for p in params] == [TOP_K_STATS] * 3
    assert seeds_of(params) == [4 * 1_000_003 + index for index in range(3)]
    assert sum(seen) == 3
    assert generations[0].text != generations[1].text  # copies of a prompt get their own samples here too
    for conversation, param, generation in zip(conversations, params, generations):
        content = conversation[-1]["content"]
        assert isinstance(generation, Generation)
        assert generation.text.startswith(f"reply to {content} #")
        # The stand-in's answer: the reply, a sampled marker, a newline and EOS, which chat_details drops.
        answer = f"  reply to {content}"
        token_ids = FakeLLM._run(tokenize(content), answer, param).outputs[0].token_ids
        assert token_ids[-1] == EOS
        marker = len(token_ids) - 2 - len(answer)
        probs = [char_prob(ord(c)) for c in answer] + [MARKER_PROB] * marker + [char_prob(ord("\n"))]
        expected = [expected_stats(t, p) for t, p in zip(token_ids[:-1], probs)]
        assert len(generation.logprobs) == len(generation.entropies) == len(generation.top_probs) == len(token_ids) - 1
        assert generation.logprobs == pytest.approx([e[0] for e in expected])
        assert generation.entropies == pytest.approx([e[1] for e in expected])
        assert generation.top_probs == pytest.approx([e[2] for e in expected])


def test_chat_details_uses_the_top_10_when_vllm_adds_the_sampled_token(fake_vllm):
    # A sampled token outside the top 10 comes as an 11th entry: the entropy and top probability
    # are of the top 10 alone, the token's log-probability is its own.
    engine = make_engine()
    (generation,) = engine.chat_details([[{"role": "user", "content": "x"}]], Sampling(temperature=1.0, max_new_tokens=64, seed=0))
    out = engine.llm.calls[0]
    marker_step = len("  reply to x #")  # the first digit of the marker
    request_output = FakeLLM._run(tokenize("x"), "  reply to x", out[2][0])
    assert len(request_output.outputs[0].logprobs[marker_step]) == TOP_K_STATS + 1
    digit = request_output.outputs[0].token_ids[marker_step]
    logprob, entropy, top = expected_stats(digit, MARKER_PROB)
    assert generation.logprobs[marker_step] == pytest.approx(logprob)
    assert generation.entropies[marker_step] == pytest.approx(entropy)
    assert generation.top_probs[marker_step] == pytest.approx(top) == pytest.approx(DISTRACTORS[1000])


def test_chat_details_keeps_the_last_token_when_the_answer_is_cut_at_max_tokens(fake_vllm):
    engine = make_engine()
    (generation,) = engine.chat_details([[{"role": "user", "content": "hello"}]], Sampling(temperature=0.0, max_new_tokens=5))
    assert generation.text == "rep"  # "  rep", stripped; finish_reason "length": nothing is dropped
    assert len(generation.logprobs) == 5
    assert generation.logprobs == pytest.approx([math.log(char_prob(ord(c))) for c in "  rep"])
    assert "seed" not in engine.llm.calls[0][2][0].kwargs


def test_chat_details_drops_only_the_end_of_text_token(fake_vllm):
    engine = make_engine()
    (generation,) = engine.chat_details([[{"role": "user", "content": "hi"}]], Sampling(temperature=0.0, max_new_tokens=64))
    assert generation.text == "reply to hi"
    # "  reply to hi\n" is 14 tokens; vLLM returned 15 with the EOS.
    assert len(generation.logprobs) == len("  reply to hi\n")
    assert generation.logprobs[-1] == pytest.approx(math.log(char_prob(ord("\n"))))


# --- first_token_probs and score ---------------------------------------------------------------


def test_first_token_probs_reads_the_first_steps_top_logprobs(fake_vllm, monkeypatch):
    monkeypatch.setattr(FakeLLM, "answer", staticmethod(lambda ids: "unsafe" if "bad" in FakeTokenizer().decode(ids) else "safe"))
    engine = make_engine()
    probs = engine.first_token_probs(["[INST] good [/INST]", "[INST] bad [/INST]"], ["safe", "unsafe"], templated=True)
    ((kind, prompts, params, _),) = engine.llm.calls
    assert kind == "generate"
    assert prompts[0] == {"prompt_token_ids": [ord(c) for c in "[INST] good [/INST]"]}
    assert params.kwargs == {"max_tokens": 1, "temperature": 0.0, "logprobs": 20}
    # The candidate the model says has its probability; one outside the top 20 counts as 0.
    assert probs == [
        {"safe": pytest.approx(char_prob(ord("s"))), "unsafe": 0.0},
        {"safe": 0.0, "unsafe": pytest.approx(char_prob(ord("u")))},
    ]
    engine.first_token_probs(["plain"], ["safe"])
    assert engine.llm.calls[1][1] == ["plain"]  # not templated: vLLM adds the special tokens


def test_score_sums_the_continuation_tokens_prompt_logprobs(fake_vllm):
    engine = make_engine(prefix_caching=False)
    requests = [ScoreRequest("Question: 2+2?\nAnswer:", " 4"), ScoreRequest("Q?\nAnswer:", " Paris")]
    seen = []
    scores = engine.score(requests, progress=seen.append)
    ((kind, prompts, params, _),) = engine.llm.calls
    assert kind == "generate"
    assert prompts == ["Question: 2+2?\nAnswer: 4", "Q?\nAnswer: Paris"]  # one pass over prompt + continuation
    assert params.kwargs["prompt_logprobs"] == 0
    assert params.kwargs["max_tokens"] == 1
    assert "seed" not in params.kwargs
    for request, score in zip(requests, scores):
        expected = sum(token_logprob(ord(c)) for c in request.continuation)
        assert isinstance(score, ContinuationScore)
        assert score.tokens == len(request.continuation)
        assert score.logprob == pytest.approx(expected)
    assert sum(seen) == 2


def test_score_refuses_an_engine_with_prefix_caching(fake_vllm):
    engine = make_engine()
    with pytest.raises(RuntimeError, match="prefix_caching=False"):
        engine.score([ScoreRequest("Q?", " A")])
    assert engine.llm.calls == []


# --- close -------------------------------------------------------------------------------------


@pytest.fixture
def observed_memory(monkeypatch, teardown_calls):
    """gc.collect and torch.cuda.empty_cache record into teardown_calls; CUDA looks available."""
    import torch

    monkeypatch.setattr(gc, "collect", lambda *args: teardown_calls.append("gc.collect") or 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: teardown_calls.append("torch.cuda.empty_cache"))
    return teardown_calls


def test_close_frees_the_llm_then_vllms_distributed_state_and_the_cuda_cache(fake_vllm, observed_memory, monkeypatch):
    engine = make_engine()
    llm = weakref.ref(engine.llm)
    FakeLLM.instances = []  # the stand-in's own bookkeeping must not keep the LLM alive
    parallel_state = sys.modules["vllm.distributed.parallel_state"]
    destroy = parallel_state.destroy_model_parallel

    def destroy_model_parallel():
        # The engine dropped its LLM before tearing vLLM's state down.
        observed_memory.append(f"llm alive: {llm() is not None}")
        destroy()

    monkeypatch.setattr(parallel_state, "destroy_model_parallel", destroy_model_parallel)
    engine.close()
    assert observed_memory == [
        "llm alive: False", "destroy_model_parallel", "destroy_distributed_environment", "gc.collect", "torch.cuda.empty_cache",
    ]
    engine.close()  # a second close is harmless and does nothing
    assert len(observed_memory) == 5


def test_close_skips_the_cuda_cache_without_cuda(fake_vllm, observed_memory, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    make_engine().close()
    assert observed_memory == ["destroy_model_parallel", "destroy_distributed_environment", "gc.collect"]


def test_close_works_with_a_vllm_without_the_distributed_module(fake_vllm, observed_memory, monkeypatch):
    monkeypatch.delitem(sys.modules, "vllm.distributed.parallel_state")
    monkeypatch.delitem(sys.modules, "vllm.distributed")
    del fake_vllm.distributed
    make_engine().close()
    assert observed_memory == ["gc.collect", "torch.cuda.empty_cache"]


# --- imports and choice ------------------------------------------------------------------------


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


# --- tensor parallel: the stage pod's GPUs ------------------------------------------------------


@pytest.mark.parametrize(
    "requested, gpus, heads, kv_heads, expected",
    [
        (1, 0, 32, 8, 1),  # a local run: no SEAS_GPUS_PER_POD
        (1, 1, 32, 8, 1),
        (1, 8, 32, 8, 8),  # Llama-3-8B on 8 GPUs: 32 heads, 8 KV heads
        (1, 4, 32, 8, 4),
        (1, 8, None, None, 8),  # heads unknown (a hub id vLLM downloads): all the GPUs
        (1, 8, 9, 3, 3),  # SmolLM2-135M: 9 heads, 3 KV heads -> the most GPUs that split them
        (1, 8, 12, 4, 4),
        (1, 6, 32, 8, 4),  # 6 does not divide 32
        (1, 8, 64, 2, 8),  # fewer KV heads than GPUs: replicated, 8 is a multiple of 2
        (2, 8, 32, 8, 2),  # asked for explicitly: kept
        (4, 0, 32, 8, 4),
    ],
)
def test_tensor_parallel_size_is_the_pods_gpus_the_model_can_split_over(requested, gpus, heads, kv_heads, expected):
    from seas_runtime.engines.vllm_engine import choose_tensor_parallel_size

    assert choose_tensor_parallel_size(requested, gpus, heads, kv_heads) == expected


def test_engine_splits_the_model_over_the_gpus_the_operator_gave_the_pod(fake_vllm, monkeypatch, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"num_attention_heads": 32, "num_key_value_heads": 8}))
    monkeypatch.setenv("SEAS_GPUS_PER_POD", "8")
    from seas_runtime.engines.vllm_engine import VllmEngine

    engine = VllmEngine(str(model))
    assert FakeLLM.instances[-1].kwargs["tensor_parallel_size"] == engine.tensor_parallel_size == 8
    VllmEngine(str(model), tensor_parallel_size=2)  # ModelRef.tensorParallelSize set: kept
    assert FakeLLM.instances[-1].kwargs["tensor_parallel_size"] == 2
    monkeypatch.setenv("SEAS_GPUS_PER_POD", "6")
    VllmEngine(str(model))
    assert FakeLLM.instances[-1].kwargs["tensor_parallel_size"] == 4  # 32 heads do not split 6 ways
    monkeypatch.setenv("SEAS_GPUS_PER_POD", "not-a-number")
    VllmEngine(str(model))
    assert FakeLLM.instances[-1].kwargs["tensor_parallel_size"] == 1
    monkeypatch.delenv("SEAS_GPUS_PER_POD")
    VllmEngine(str(model))
    assert FakeLLM.instances[-1].kwargs["tensor_parallel_size"] == 1


def test_open_engine_uses_the_pods_gpus_for_a_default_model_ref(fake_vllm, monkeypatch):
    monkeypatch.setenv("SEAS_GPUS_PER_POD", "2")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    open_engine(ModelRef(model="/models/target", engine="vllm"))  # no config.json to read: all the GPUs
    assert FakeLLM.instances[-1].kwargs["tensor_parallel_size"] == 2
