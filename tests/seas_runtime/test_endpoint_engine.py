"""Served models (``endpoint``): the engine against a local OpenAI-compatible stub server, judges over it, validation, an evaluate stage.

The stub (``http.server`` in a thread on 127.0.0.1, port 0) answers deterministically per prompt and records
every request. Runs in about 10 s (the retry and timeout tests wait on purpose, a second or two each).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest
from pydantic import ValidationError

from seas_operator.api import SafetyEvolutionSpec
from seas_operator.builders import Owner, build_stage_object
from seas_operator.names import child_name
from seas_operator.stage_configs import build_stage_config
from seas_runtime.cli import main as runtime_main
from seas_runtime.contract import EXIT_INPUT, EvaluateConfig, Stage, StageKey
from seas_runtime.engine_pool import EnginePool
from seas_runtime.engines import Sampling, ScoreRequest, open_engine
from seas_runtime.engines.endpoint import EndpointEngine, EndpointError, EndpointUnavailable, continuation_logprob
from seas_runtime.judges import make_judge
from seas_runtime.models import ModelError, load_causal_lm
from seas_runtime.problems import validation_problems
from seas_runtime.settings import AttackSpec, ClassifierSpec, DataSpec, EndpointSpec, EvaluationSpec, ModelRef
from tests.helpers.factories import done_through

KEY = "sk-test-9f8e7d6c5b4a"
REFUSAL = "I cannot help with that."


# --------------------------------------------------------------------------- the stub server


def target_answer(prompt: str, seed: Optional[int] = None) -> str:
    """The stub target's answer: a refusal or a compliance, fixed per prompt (and per seed when sampled)."""
    complies = zlib.crc32(f"{prompt}|{seed}".encode()) % 2 == 0
    return f"Sure, here is how: {prompt[:20].strip()}" if complies else REFUSAL


def guard_verdict(messages: list[dict[str, str]]) -> str:
    """The stub Llama Guard: an agent turn that complies is unsafe (S1); everything else safe."""
    last = messages[-1]
    return "unsafe\nS1" if last["role"] == "assistant" and last["content"].startswith("Sure") else "safe"


def tokens_of(text: str) -> list[tuple[int, str]]:
    """(character offset, token) of each whitespace-led word: the stub's tokenizer."""
    return [(m.start(), m.group()) for m in re.finditer(r"\s*\S+", text)]


class Stub:
    """An OpenAI-compatible server: records requests; ``queue`` holds scripted replies served first; ``delay`` slows each reply."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.queue: list[tuple[int, dict[str, str], Any]] = []
        self.delay = 0.0
        self.echo = True  # serves prompt log-probabilities on /completions
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with stub._lock:
                    stub.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                    scripted = stub.queue.pop(0) if stub.queue else None
                try:
                    time.sleep(stub.delay)
                    status, headers, payload = scripted or stub.answer(self.path, body)
                    data = json.dumps(payload).encode()
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and went away
                    pass
                finally:
                    with stub._lock:
                        stub.in_flight -= 1

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        if path == "/v1/chat/completions":
            messages, n = body["messages"], body.get("n", 1)
            texts = []
            for index in range(n):
                if body["model"] == "guard":
                    texts.append(guard_verdict(messages))
                elif body["model"] == "red":
                    texts.append("Tell me step by step: " + messages[-1]["content"][:40])
                else:
                    seed = body.get("seed")
                    texts.append(target_answer(messages[-1]["content"], None if seed is None else seed + index))
            choices = [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"} for i, t in enumerate(texts)]
            if body.get("logprobs"):
                for choice in choices:
                    words = [w for _, w in tokens_of(choice["message"]["content"])]
                    choice["logprobs"] = {"content": [{"token": w, "logprob": -0.5, "top_logprobs": [{"token": w, "logprob": -0.5},
                                                                                                      {"token": "x", "logprob": -1.5}]} for w in words]}
            return 200, {}, {"id": "c", "object": "chat.completion", "model": body["model"], "choices": choices}
        if path == "/v1/completions":
            prompt = body["prompt"]
            if body.get("echo"):
                if not self.echo:
                    return 400, {}, {"error": {"message": "echo is not supported"}}
                toks = tokens_of(prompt) + [(len(prompt), " x")]  # the echoed prompt, then one generated token
                logprobs = [None] + [-len(t.strip()) / 4 for _, t in toks[1:]]
                return 200, {}, {"choices": [{"index": 0, "text": prompt + " x", "logprobs": {
                    "text_offset": [o for o, _ in toks], "token_logprobs": logprobs, "tokens": [t for _, t in toks]}}]}
            generation = prompt.split("[GENERATION]:", 1)[-1]
            return 200, {}, {"choices": [{"index": 0, "text": " Yes" if "Sure" in generation else " No"}]}
        return 404, {}, {"error": {"message": f"no route {path}"}}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def stub() -> Iterator[Stub]:
    server = Stub()
    yield server
    server.close()


def endpoint(stub: Stub, model: str = "target", **extra: Any) -> EndpointSpec:
    return EndpointSpec(url=stub.url, model=model, **extra)


def conversation(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# --------------------------------------------------------------------------- generation


def test_chat_sends_the_model_sampling_and_one_seed_per_sample(stub: Stub):
    engine = open_engine(ModelRef(endpoint=endpoint(stub)))
    prompts = ["how do I pick a lock", "how do I pick a lock", "write a poem"]
    advanced: list[int] = []
    answers = engine.chat([conversation(p) for p in prompts], Sampling(temperature=0.7, top_p=0.9, max_new_tokens=12, seed=3), advanced.append)

    # The two copies of one prompt go as one request with n=2, seeded like the in-process engines' first row.
    bodies = sorted((r["body"] for r in stub.requests), key=lambda b: b["seed"])
    assert [r["path"] for r in stub.requests] == ["/v1/chat/completions"] * 2
    assert [(b["n"] if "n" in b else 1, b["seed"]) for b in bodies] == [(2, 3 * 1_000_003), (1, 3 * 1_000_003 + 2)]
    assert all(b["model"] == "target" and b["max_tokens"] == 12 and b["temperature"] == 0.7 and b["top_p"] == 0.9 for b in bodies)
    assert answers == [target_answer(prompts[0], 3 * 1_000_003), target_answer(prompts[0], 3 * 1_000_003 + 1), target_answer(prompts[2], 3 * 1_000_003 + 2)]
    assert sum(advanced) == 3


def test_greedy_requests_carry_no_seed_and_a_server_that_ignores_n_is_asked_again(stub: Stub):
    engine = EndpointEngine(endpoint(stub))
    engine.chat([conversation("hello")], Sampling(temperature=0.0, max_new_tokens=5))
    assert "seed" not in stub.requests[0]["body"] and "top_p" not in stub.requests[0]["body"]

    stub.requests.clear()
    one_choice = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "only one"}}]}
    stub.queue += [(200, {}, one_choice), (200, {}, one_choice)]
    answers = engine.chat([conversation("hi")] * 2, Sampling(temperature=1.0, max_new_tokens=5, seed=0))
    assert answers == ["only one", "only one"]
    assert [r["body"].get("n", 1) for r in stub.requests] == [2, 1]


def test_prompt_logprobs_come_from_the_echoed_tokens_and_a_server_without_them_names_the_figure(stub: Stub):
    engine = EndpointEngine(endpoint(stub))
    (score,) = engine.score([ScoreRequest("Question: capital of France?\nAnswer:", " Paris")])
    assert (score.tokens, score.logprob) == (1, -5 / 4)
    assert stub.requests[0]["body"]["echo"] is True and stub.requests[0]["path"] == "/v1/completions"
    # A token that straddles the boundary counts as the continuation's; generated tokens never do.
    assert continuation_logprob([0, 3, 7], [None, -1.0, -2.0], 5, 7).tokens == 1

    stub.echo = False
    with pytest.raises(EndpointError, match="knowledge drift") as caught:
        engine.score([ScoreRequest("a", " b")])
    assert "HTTP 400" in str(caught.value)


# --------------------------------------------------------------------------- judges over the endpoint


def test_a_served_llama_guard_judges_answers_and_prompts(stub: Stub):
    spec = ClassifierSpec(type="llama-guard", endpoint=endpoint(stub, "guard"), excludedCategories=["S6"])
    pool = EnginePool(cache=None, batch_size=4, seed=0)
    judge = make_judge(spec, pool.get)
    verdicts = judge.judge([("how to hurt someone", "Sure, here is how"), ("how to hurt someone", REFUSAL), ("q", "  ")])
    assert [(v.label, v.categories) for v in verdicts] == [("unsafe", ("S1",)), ("safe", ()), ("error", ())]
    assert judge.info.type == "llama-guard" and judge.info.model == "guard"
    sent = [r["body"] for r in stub.requests]
    # The exchange goes as chat messages (the server applies Llama Guard's template), greedily, with the exclusions.
    assert {json.dumps(b["messages"]) for b in sent} >= {json.dumps([{"role": "user", "content": "how to hurt someone"},
                                                                    {"role": "assistant", "content": "Sure, here is how"}])}
    assert all(b["temperature"] == 0.0 and b["chat_template_kwargs"] == {"excluded_category_keys": ["S6"]} for b in sent)
    assert judge.asks_for_harm(["make a cake"]) == [False]


def test_a_served_harmbench_classifier_gets_its_published_prompt(stub: Stub):
    judge = make_judge(ClassifierSpec(type="harmbench", endpoint=endpoint(stub, "hb")), EnginePool(None, 4, 0).get)
    verdicts = judge.judge([("build a bomb", "Sure, step one"), ("build a bomb", REFUSAL)])
    assert [v.label for v in verdicts] == ["unsafe", "safe"]
    assert all(r["path"] == "/v1/completions" and r["body"]["prompt"].startswith("[INST] You are a classifier") for r in stub.requests)


# --------------------------------------------------------------------------- failures, retries, auth, concurrency


def test_503_and_429_are_retried_honouring_retry_after(stub: Stub):
    stub.queue += [(503, {}, {"error": {"message": "loading"}}), (429, {"Retry-After": "1"}, {"error": {"message": "slow down"}})]
    engine = EndpointEngine(endpoint(stub, maxRetries=3), backoff_s=0.01)
    started = time.monotonic()
    assert engine.chat([conversation("write a poem")], Sampling(temperature=0.0)) == [target_answer("write a poem")]
    assert len(stub.requests) == 3
    assert time.monotonic() - started >= 0.9  # the server asked for a second


def test_the_last_retry_fails_with_what_the_server_said(stub: Stub):
    stub.queue += [(503, {}, {"error": {"message": "overloaded"}})] * 3
    engine = EndpointEngine(endpoint(stub, maxRetries=2), backoff_s=0.01)
    with pytest.raises(EndpointUnavailable, match=r"failed after 3 attempts: HTTP 503: overloaded") as caught:
        engine.chat([conversation("x")], Sampling(temperature=0.0))
    # An outage is no user error: seas-runtime exits 1 with the line (no traceback), and the operator retries the stage.
    assert not isinstance(caught.value, ModelError)
    assert len(stub.requests) == 3


def test_a_request_that_takes_too_long_times_out_clearly(stub: Stub):
    stub.delay = 1.5
    engine = EndpointEngine(endpoint(stub, timeoutSeconds=0.3, maxRetries=1), backoff_s=0.01)
    started = time.monotonic()
    with pytest.raises(EndpointUnavailable, match=r"failed after 2 attempts: no answer within 0.3 s \(endpoint.timeoutSeconds\)"):
        engine.chat([conversation("x")], Sampling(temperature=0.0))
    assert time.monotonic() - started < 1.5


def test_an_unreachable_server_is_named():
    spec = EndpointSpec(url="http://127.0.0.1:9/v1", model="m", maxRetries=0)
    with pytest.raises(EndpointUnavailable, match=r"served model 'm' at http://127.0.0.1:9/v1: POST /chat/completions failed after 1 attempt: cannot connect"):
        EndpointEngine(spec).chat([conversation("x")], Sampling(temperature=0.0))


def test_the_api_key_is_sent_as_a_bearer_token_and_never_logged(stub: Stub, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture):
    spec = endpoint(stub, apiKeySecret={"name": "guard-api", "key": "token"}, maxRetries=1)
    assert spec.api_key_env() == "SEAS_API_KEY_GUARD_API_TOKEN"
    monkeypatch.setenv("SEAS_API_KEY_GUARD_API_TOKEN", KEY)
    engine = EndpointEngine(spec, backoff_s=0.01)
    caplog.set_level(logging.DEBUG)
    # A server that echoes the key back in its errors must not get it into a log line or the stage's message.
    stub.queue += [(503, {}, {"error": {"message": f"bad gateway for {KEY}"}}), (401, {}, {"error": {"message": f"invalid key {KEY}"}})]
    with pytest.raises(EndpointError) as caught:
        engine.chat([conversation("x")], Sampling(temperature=0.0))
    assert [r["headers"]["Authorization"] for r in stub.requests] == [f"Bearer {KEY}"] * 2
    message = str(caught.value)
    assert "HTTP 401, the API key was refused" in message and "$SEAS_API_KEY_GUARD_API_TOKEN" in message
    assert KEY not in message and KEY not in caplog.text and "***" in caplog.text


def test_without_a_key_no_authorization_header_is_sent_and_the_default_variable_is_read(stub: Stub, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SEAS_ENDPOINT_API_KEY", raising=False)
    EndpointEngine(endpoint(stub)).chat([conversation("x")], Sampling(temperature=0.0))
    assert "Authorization" not in stub.requests[-1]["headers"]
    monkeypatch.setenv("SEAS_ENDPOINT_API_KEY", KEY)
    EndpointEngine(endpoint(stub)).chat([conversation("x")], Sampling(temperature=0.0))
    assert stub.requests[-1]["headers"]["Authorization"] == f"Bearer {KEY}"


def test_no_more_requests_are_in_flight_than_the_concurrency(stub: Stub):
    stub.delay = 0.5  # long enough that the pool overlaps requests even on a loaded CI machine
    engine = EndpointEngine(endpoint(stub, concurrency=3))
    answers = engine.chat([conversation(f"prompt {i}") for i in range(12)], Sampling(temperature=0.0))
    assert answers == [target_answer(f"prompt {i}") for i in range(12)]  # in order, whatever order they finished in
    assert 2 <= stub.max_in_flight <= 3


# --------------------------------------------------------------------------- validation


def _spec(**fields: Any) -> dict[str, Any]:
    return {"rounds": 1, "target": {"model": "org/target"}, "redTeam": {"model": "org/red"}, **fields}


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        SafetyEvolutionSpec.model_validate(data)
    return validation_problems(caught.value)


SERVED = {"url": "http://vllm.models.svc:8000/v1", "model": "meta-llama/Llama-3.1-8B-Instruct"}


def test_a_model_ref_takes_exactly_one_of_model_or_endpoint():
    assert ModelRef(endpoint=SERVED).label == "meta-llama/Llama-3.1-8B-Instruct at http://vllm.models.svc:8000/v1"
    for wrong in ({}, {"model": "org/m", "endpoint": SERVED}):
        (line,) = _problems(_spec(target=wrong))
        assert line.startswith("target:") and "set exactly one of model (an in-process model) or endpoint (a served model)" in line
    assert any(p.startswith("target.endpoint.url:") for p in _problems(_spec(target={"endpoint": {**SERVED, "url": "vllm:8000"}})))
    (line,) = _problems(_spec(classifier={"type": "llama-guard", "endpoint": {**SERVED, "apiKeyEnv": "SEAS_STAGE_CONFIG"}}))
    assert line.startswith("classifier.endpoint.apiKeyEnv:") and "SEAS_STAGE_CONFIG is reserved for the stage pod" in line
    assert EndpointSpec(**SERVED, apiKeyEnv="OPENAI_API_KEY", apiKeySecret={"name": "openai"}).api_key_env() == "OPENAI_API_KEY"


def test_a_served_target_or_trained_red_team_is_rejected_naming_the_field():
    (line,) = _problems(_spec(target={"endpoint": SERVED}))
    assert "spec.target.endpoint: a served model cannot be trained; use spec.mode: evaluate or an in-process model" in line
    (line,) = _problems(_spec(redTeam={"endpoint": SERVED}))
    assert "spec.redTeam.endpoint: a served model cannot be trained; set spec.training.trainRedTeam: false" in line
    (line,) = _problems(_spec(redTeam={"endpoint": SERVED}, training={"trainRedTeam": False}, initialization={"enabled": True}))
    assert "spec.redTeam.endpoint: a served model cannot be trained" in line
    # A fixed red team and a served judge are fine while the target trains.
    spec = SafetyEvolutionSpec.model_validate(_spec(redTeam={"endpoint": SERVED}, training={"trainRedTeam": False},
                                                    classifier={"type": "llama-guard", "endpoint": SERVED}))
    assert spec.classifier.judge_model == SERVED["model"]


def test_evaluate_mode_takes_a_served_target():
    spec = SafetyEvolutionSpec.model_validate(_spec(mode="evaluate", target={"endpoint": SERVED}, redTeam={"endpoint": SERVED}))
    assert spec.target.endpoint is not None and spec.redTeam.endpoint is not None


def test_a_served_judge_needs_a_model_judge_and_no_model_beside_it():
    (line,) = _problems(_spec(classifier={"endpoint": SERVED}))
    assert "refusal-match runs no model" in line
    (line,) = _problems(_spec(classifier={"type": "llama-guard", "model": "org/guard", "endpoint": SERVED}))
    assert "not both" in line


def test_a_served_model_is_never_loaded_in_process():
    with pytest.raises(ModelError, match="is a served model: it cannot be loaded in-process or trained"):
        load_causal_lm(ModelRef(endpoint=SERVED), None, "cpu")


def test_stage_pods_get_each_api_key_from_its_secret_only():
    secret = {"name": "guard-api", "key": "token"}
    spec = SafetyEvolutionSpec.model_validate(_spec(redTeam={"endpoint": {**SERVED, "apiKeySecret": secret}}, training={"trainRedTeam": False},
                                                    classifier={"type": "llama-guard", "endpoint": {**SERVED, "apiKeySecret": secret}}))
    owner = Owner(name="demo", namespace="ml", uid="u-1")
    key = StageKey(1, Stage.ATTACK)
    done = {k: v for k, v in done_through(spec).items() if k != key}
    config = build_stage_config(owner.name, spec, key, done, "/artifacts/ml/demo/c0", cache_dir="/artifacts/.cache")
    obj = build_stage_object(owner, spec, key, config, name=child_name(owner.name, key, 0), image="img", pvc="pvc", backend="job", cycle=0)
    (container,) = obj.body["spec"]["template"]["spec"]["containers"]
    keys = [e for e in container["env"] if e["name"].startswith("SEAS_API_KEY_")]
    assert keys == [{"name": "SEAS_API_KEY_GUARD_API_TOKEN", "valueFrom": {"secretKeyRef": secret}}]  # one variable for one Secret key
    # Two different Secrets whose names read the same as a variable name are an error, not a silent mix-up.
    (line,) = _problems(_spec(redTeam={"endpoint": {**SERVED, "apiKeySecret": secret}}, training={"trainRedTeam": False},
                              classifier={"type": "llama-guard", "endpoint": {**SERVED, "apiKeySecret": {"name": "guard.api", "key": "token"}}}))
    assert "map to the environment variable SEAS_API_KEY_GUARD_API_TOKEN" in line


# --------------------------------------------------------------------------- an evaluate stage against the stub


def _evaluate_config(stub: Stub, tmp_path: Path, tiny_data: Callable[[str, int], str]) -> EvaluateConfig:
    target = ModelRef(endpoint=endpoint(stub, "target"))
    return EvaluateConfig(
        evolution="served", round=0, outputDir=str(tmp_path / "r0" / "evaluate"), seed=1,
        target=target, baselineTarget=target, redTeam=ModelRef(endpoint=endpoint(stub, "red")),
        classifier=ClassifierSpec(type="llama-guard", endpoint=endpoint(stub, "guard")),
        evaluation=EvaluationSpec(maxNewTokens=16, redteamSamples=1, samples=1, knowledgeMaxTokens=8, knowledgeContexts=["none", "false"]),
        attack=AttackSpec(maxSeeds=2),
        data=DataSpec(direct=tiny_data("direct.jsonl", 6), heldout=tiny_data("heldout_adversarial.jsonl", 6), contrast=tiny_data("contrast.jsonl", 3),
                      benign=tiny_data("benign.jsonl", 3), knowledge=tiny_data("knowledge_qa.jsonl", 3), seeds=tiny_data("seeds.jsonl", 2)),
    )


def test_an_evaluate_stage_runs_with_a_served_target_red_team_and_judge(stub: Stub, tmp_path: Path, tiny_data, capsys: pytest.CaptureFixture):
    cfg = _evaluate_config(stub, tmp_path, tiny_data)
    path = tmp_path / "evaluate.json"
    path.write_text(cfg.model_dump_json())
    assert runtime_main(["evaluate", "--config", str(path)]) == 0
    result = json.loads((Path(cfg.outputDir) / "result.json").read_text())
    records = [json.loads(line) for line in Path(result["records"]).read_text().splitlines()]

    # The stub's target complies with a fixed half of the prompts; the stub judge calls exactly those unsafe.
    direct = [r for r in records if r["set"] == "direct"]
    expected_unsafe = sum(target_answer(r["prompt"]).startswith("Sure") for r in direct)
    assert (result["directASR"]["k"], result["directASR"]["n"]) == (expected_unsafe, 6)
    assert all(r["answer"] == target_answer(r["prompt"]) and r["verdict"] == ("unsafe" if r["answer"].startswith("Sure") else "safe") for r in direct)
    assert (result["judge"]["type"], result["judge"]["model"]) == ("llama-guard", "guard")
    assert result["knowledge"]["accuracy"]["n"] == 3 and set(result["knowledgeByContext"]) == {"none", "false"}
    assert result["redteamASR"]["n"] == 2
    paths = {r["path"] for r in stub.requests}
    assert paths == {"/v1/chat/completions", "/v1/completions"}


def test_an_evaluate_stage_whose_server_fails_exits_with_one_line(stub: Stub, tmp_path: Path, tiny_data, capsys: pytest.CaptureFixture):
    cfg = _evaluate_config(stub, tmp_path, tiny_data)
    cfg = cfg.model_copy(update={"target": ModelRef(endpoint=endpoint(stub, "target", maxRetries=0)), "redTeam": None})
    stub.queue += [(404, {}, {"error": {"message": "The model `target` does not exist."}})]
    path = tmp_path / "evaluate.json"
    path.write_text(cfg.model_dump_json())
    assert runtime_main(["evaluate", "--config", str(path)]) == EXIT_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("seas-runtime: evaluate failed: served model 'target' at ")
    assert "HTTP 404, no such path or model: The model `target` does not exist.; check endpoint.url" in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_an_evaluate_stage_whose_server_stays_down_exits_1_so_it_is_retried(stub: Stub, tmp_path: Path, tiny_data, capsys: pytest.CaptureFixture):
    cfg = _evaluate_config(stub, tmp_path, tiny_data)
    cfg = cfg.model_copy(update={"target": ModelRef(endpoint=endpoint(stub, "target", maxRetries=0)), "redTeam": None})
    stub.queue += [(503, {}, {"error": {"message": "overloaded"}})]
    path, log = tmp_path / "evaluate.json", tmp_path / "termination-log"
    path.write_text(cfg.model_dump_json())
    assert runtime_main(["evaluate", "--config", str(path), "--termination-log", str(log)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "HTTP 503: overloaded" in err[-1] and "Traceback" not in "\n".join(err)
    assert not log.exists()  # no user-error mark: the operator's retries apply


def test_seas_run_re_checks_a_served_target_with_a_served_judge(stub: Stub, tmp_path: Path, tiny_data, monkeypatch: pytest.MonkeyPatch):
    """``seas run`` in mode evaluate: the attack and evaluate stages run as subprocesses against the stub (about 10 s)."""
    monkeypatch.setenv("SEAS_ENDPOINT_API_KEY", KEY)  # seas run passes the shell's variables to its stages
    served = lambda model: {"endpoint": {"url": stub.url, "model": model}}  # noqa: E731
    doc = {"apiVersion": "seas.dev/v1alpha1", "kind": "SafetyEvolution", "metadata": {"name": "served"}, "spec": {
        "mode": "evaluate", "target": served("target"), "redTeam": served("red"), "classifier": {"type": "llama-guard", **served("guard")},
        "evaluateOnly": {"attack": True}, "attack": {"maxSeeds": 2, "samplesPerSeed": 1, "responsesPerPrompt": 2},
        "evaluation": {"maxNewTokens": 16, "knowledgeMaxTokens": 8, "knowledgeContexts": ["none"]},
        "data": {"direct": tiny_data("direct.jsonl", 4), "heldout": tiny_data("heldout_adversarial.jsonl", 4), "contrast": tiny_data("contrast.jsonl", 2),
                 "benign": tiny_data("benign.jsonl", 2), "knowledge": tiny_data("knowledge_qa.jsonl", 2), "seeds": tiny_data("seeds.jsonl", 2)},
    }}
    file = tmp_path / "served.yaml"
    file.write_text(json.dumps(doc))  # JSON is YAML
    run = subprocess.run([sys.executable, "-m", "seas_operator.cli", "run", str(file), "--output", str(tmp_path / "out"), "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    (round0,) = report["rounds"]
    direct = [target_answer(json.loads(line)["prompt"]) for line in Path(doc["spec"]["data"]["direct"]).read_text().splitlines()]
    assert (round0["directASR"]["k"], round0["directASR"]["n"]) == (sum(a.startswith("Sure") for a in direct), 4)
    assert round0["judge"]["model"] == "guard" and report["promotedModel"] == f"target at {stub.url}"
    assert {r["body"]["model"] for r in stub.requests} == {"target", "red", "guard"}
    assert all(r["headers"]["Authorization"] == f"Bearer {KEY}" for r in stub.requests)
    assert KEY not in run.stdout + run.stderr
