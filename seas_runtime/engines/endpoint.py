"""The endpoint engine: a model served behind an OpenAI-compatible API (vLLM, KServe, TGI), used over HTTP.

Chat goes to ``POST {url}/chat/completions``; raw completions and prompt
log-probabilities (``score``: knowledge drift's cloze scores, the red-team
prompt perplexity) to ``POST {url}/completions`` with ``echo`` and
``logprobs``, which vLLM serves and many hosted APIs do not: such a server
gets a clear error naming the figure that needs an in-process model instead.

Requests run on a bounded thread pool (``endpoint.concurrency``), each with a
timeout, and are retried with exponential backoff on HTTP 429, a 5xx, a
timeout or a connection error (``Retry-After`` honoured); after the last retry
the stage fails with one line saying what the server did. The API key is read
from an environment variable (:meth:`EndpointSpec.api_key_env`, which the
operator fills from ``apiKeySecret``), sent as a Bearer token, and never
appears in a message or a log. Only the standard library is used.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import math
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Optional, Sequence

from ..models import ModelError
from ..settings import DEFAULT_API_KEY_ENV, EndpointSpec
from .base import TOP_K_STATS, Advance, ContinuationScore, Engine, Generation, Messages, Sampling, ScoreRequest, row_seeds

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})  # transient: the same request may succeed later
MAX_BACKOFF_S = 60.0  # a server's Retry-After is honoured up to this; longer waits are cut to it
ERROR_BODY_CHARS = 200


class EndpointError(ModelError):
    """A served model refused or cannot do what was asked; the message says what the server did (never the API key)."""


class EndpointUnavailable(RuntimeError):
    """A served model stayed unreachable or overloaded through every retry: no user error, so the stage may be retried."""


def api_key(spec: EndpointSpec, environ: Optional[dict[str, str]] = None) -> Optional[str]:
    """The API key for ``spec``: its environment variable, else SEAS_ENDPOINT_API_KEY, else none (a server without auth)."""
    env = os.environ if environ is None else environ
    return env.get(spec.api_key_env()) or env.get(DEFAULT_API_KEY_ENV) or None


def retry_after_seconds(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds to wait; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_seconds(attempt: int, base: float, retry_after: Optional[float]) -> float:
    """The wait before retry ``attempt`` (0-based): the server's Retry-After when given, else base * 2^attempt with jitter."""
    if retry_after is not None:
        return min(retry_after, MAX_BACKOFF_S)
    # Jitter, so the pool's threads do not hit a recovering server in lockstep.
    return min(base * (2 ** attempt) * (0.5 + random.random() / 2), MAX_BACKOFF_S)


def top_k_stats(top: Sequence[float], k: int = TOP_K_STATS) -> tuple[float, float]:
    """Entropy (nats) of the ``k`` likeliest tokens' probabilities renormalised to sum 1, and the largest probability."""
    probs = [math.exp(lp) for lp in sorted(top, reverse=True)[:k]]
    total = sum(probs)
    entropy = -sum(p / total * math.log(p / total) for p in probs if p > 0.0) if total > 0.0 else 0.0
    return entropy, (probs[0] if probs else 0.0)


def continuation_logprob(text_offsets: Sequence[int], token_logprobs: Sequence[Optional[float]], start: int, end: int) -> ContinuationScore:
    """The summed log-probability of the echoed tokens that cover characters [start, end) of the prompt.

    The server tokenizes prompt and continuation together, so a token may straddle the boundary; it counts as
    the continuation's (it holds some of its text). Tokens from ``end`` on were generated, not echoed.
    """
    total, tokens = 0.0, 0
    for index, offset in enumerate(text_offsets):
        token_end = text_offsets[index + 1] if index + 1 < len(text_offsets) else end
        if offset >= end or token_end <= start:
            continue
        logprob = token_logprobs[index]
        if logprob is None:
            raise ValueError(f"no log-probability for the token at character {offset}")
        total, tokens = total + logprob, tokens + 1
    if tokens == 0:
        raise ValueError("no echoed token covers the continuation")
    return ContinuationScore(logprob=total, tokens=tokens)


class EndpointEngine(Engine):
    """Generation (and, where the server can, scoring) through an OpenAI-compatible API."""

    name = "endpoint"
    served = True

    def __init__(self, spec: EndpointSpec, backoff_s: float = 0.5, opener: Optional[Callable[..., Any]] = None) -> None:
        """``backoff_s``: the first retry's wait (doubling after each); ``opener``: ``urllib.request.urlopen`` unless a test swaps it."""
        self.spec = spec
        self.base = spec.url.rstrip("/")
        self.where = f"served model {spec.model!r} at {self.base}"
        self.backoff_s = backoff_s
        self._open = opener or urllib.request.urlopen
        self._key = api_key(spec)
        self._send_seed = True  # cleared once a server rejects the seed field
        self._lock = threading.Lock()
        log.info("using %s (%d requests at a time)", self.where, spec.concurrency)

    # --- HTTP ---------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _request(self, path: str, payload: dict[str, Any]) -> urllib.request.Request:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return urllib.request.Request(self.base + path, data=json.dumps(payload).encode(), headers=headers, method="POST")

    def post(self, path: str, payload: dict[str, Any], needed_for: str = "") -> dict[str, Any]:
        """POST ``payload`` to ``path`` and return the JSON answer, retrying transient failures; EndpointError after the last.

        ``needed_for`` names what the call serves, for the message when the server refuses it outright.
        """
        last = ""
        attempts = self.spec.maxRetries + 1
        for attempt in range(attempts):
            retry_after: Optional[float] = None
            try:
                with self._open(self._request(path, payload), timeout=self.spec.timeoutSeconds) as response:
                    body = response.read()
                try:
                    answer = json.loads(body)
                except ValueError:
                    raise EndpointError(f"{self.where}: POST {path} answered with something that is not JSON") from None
                if not isinstance(answer, dict):
                    raise EndpointError(f"{self.where}: POST {path} answered with JSON that is not an object")
                return answer
            except urllib.error.HTTPError as exc:
                detail = self._redact(self._error_detail(exc))
                if exc.code == 400 and "seed" in payload and "seed" in detail.lower():
                    # A server that does not take a seed: sample without one from now on (results stop being reproducible).
                    with self._lock:
                        if self._send_seed:
                            log.warning("%s rejects the seed field; sampling without seeds", self.where)
                        self._send_seed = False
                    payload = {k: v for k, v in payload.items() if k != "seed"}
                    last = f"HTTP 400: {detail}"
                    continue
                if exc.code not in RETRY_STATUS:
                    raise EndpointError(self._refusal(path, exc.code, detail, needed_for)) from None
                retry_after = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None)
                last = f"HTTP {exc.code}" + (f": {detail}" if detail else "")
            except (TimeoutError, socket.timeout):
                last = f"no answer within {self.spec.timeoutSeconds:g} s (endpoint.timeoutSeconds)"
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, (TimeoutError, socket.timeout)):
                    last = f"no answer within {self.spec.timeoutSeconds:g} s (endpoint.timeoutSeconds)"
                else:
                    last = f"cannot connect: {self._redact(str(reason))}"
            except (OSError, http.client.HTTPException) as exc:  # reset, refused mid-request, TLS failures
                last = f"connection failed: {self._redact(type(exc).__name__ + (': ' + str(exc) if str(exc) else ''))}"
            if attempt + 1 < attempts:
                wait_s = backoff_seconds(attempt, self.backoff_s, retry_after)
                log.warning("%s: POST %s: %s; retry %d of %d in %.1f s", self.where, path, last, attempt + 1, attempts - 1, wait_s)
                time.sleep(wait_s)
        raise EndpointUnavailable(f"{self.where}: POST {path} failed after {attempts} attempt{'s' if attempts > 1 else ''}: {last}")

    @staticmethod
    def _error_detail(exc: urllib.error.HTTPError) -> str:
        try:
            raw = exc.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            return ""
        try:
            parsed = json.loads(raw)
            error = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
            message = error.get("message", "") if isinstance(error, dict) else str(error)
        except ValueError:
            message = raw
        return " ".join(str(message).split())[:ERROR_BODY_CHARS]

    def _refusal(self, path: str, status: int, detail: str, needed_for: str) -> str:
        what = {401: "the API key was refused", 403: "the API key was refused", 404: "no such path or model"}.get(status, "the request was refused")
        hint = ""
        if status in (401, 403):
            hint = f"; check the key in ${self.spec.api_key_env()} (or the Secret in endpoint.apiKeySecret)"
        elif status == 404:
            hint = "; check endpoint.url (it usually ends in /v1) and endpoint.model"
        need = f" ({needed_for})" if needed_for else ""
        return f"{self.where}: POST {path}{need}: HTTP {status}, {what}" + (f": {detail}" if detail else "") + hint

    def _run(self, jobs: Sequence[Callable[[], Any]], progress: Advance, weights: Optional[Sequence[int]] = None) -> list[Any]:
        """Run ``jobs`` at most ``concurrency`` at a time; results in order. The first failure cancels the rest and is raised."""
        if not jobs:
            return []
        results: list[Any] = [None] * len(jobs)
        pool = ThreadPoolExecutor(max_workers=min(self.spec.concurrency, len(jobs)), thread_name_prefix="seas-endpoint")
        try:
            index_of: dict[Future, int] = {pool.submit(job): index for index, job in enumerate(jobs)}
            pending = set(index_of)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    results[index_of[future]] = future.result()  # raises the job's error
                    if progress:
                        progress(weights[index_of[future]] if weights else 1)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return results

    # --- generation ----------------------------------------------------------------------

    def _sampling_fields(self, sampling: Sampling, seed: int) -> dict[str, Any]:
        fields: dict[str, Any] = {"max_tokens": sampling.max_new_tokens, "temperature": sampling.temperature}
        if sampling.temperature > 0:
            fields["top_p"] = sampling.top_p
            if self._send_seed:
                fields["seed"] = seed
        return fields

    @staticmethod
    def _groups(conversations: Sequence[Any], sampled: bool) -> list[tuple[int, int]]:
        """(first index, count) of runs of the same conversation: sampled copies go as one request with ``n`` samples."""
        groups: list[tuple[int, int]] = []
        for index, conversation in enumerate(conversations):
            if sampled and groups and conversations[groups[-1][0]] == conversation:
                groups[-1] = (groups[-1][0], groups[-1][1] + 1)
            else:
                groups.append((index, 1))
        return groups

    def _choices(self, answer: dict[str, Any], path: str) -> list[dict[str, Any]]:
        choices = answer.get("choices")
        if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
            raise EndpointError(f"{self.where}: POST {path} answered without choices")
        return sorted(choices, key=lambda c: c.get("index", 0))

    def _chat_group(self, messages: Messages, count: int, sampling: Sampling, seed: int, extra: dict[str, Any]) -> list[dict[str, Any]]:
        payload = {"model": self.spec.model, "messages": list(messages), **self._sampling_fields(sampling, seed), **extra}
        if count > 1:
            payload["n"] = count
        choices = self._choices(self.post("/chat/completions", payload), "/chat/completions")[:count]
        while len(choices) < count:  # a server that ignores n: ask for the rest one at a time
            single = {**payload, "n": 1, **({"seed": seed + len(choices)} if "seed" in payload else {})}
            choices.append(self._choices(self.post("/chat/completions", single), "/chat/completions")[0])
        return choices

    def _chat(self, conversations: Sequence[Messages], sampling: Sampling, progress: Advance, extra: dict[str, Any]) -> list[dict[str, Any]]:
        seeds = row_seeds(sampling.seed, len(conversations))
        groups = self._groups(conversations, sampling.temperature > 0)
        jobs = [lambda first=first, count=count: self._chat_group(conversations[first], count, sampling, seeds[first], extra) for first, count in groups]
        return [choice for chunk in self._run(jobs, progress, [count for _, count in groups]) for choice in chunk]

    @staticmethod
    def _content(choice: dict[str, Any]) -> str:
        message = choice.get("message") or {}
        return str(message.get("content") or "").strip()

    def chat(self, conversations: Sequence[Messages], sampling: Sampling, progress: Advance = None,
             template_vars: Optional[dict[str, Any]] = None) -> list[str]:
        """One assistant reply per conversation; the server applies the model's chat template.

        ``template_vars`` go to the server as ``chat_template_kwargs`` (vLLM's extension; e.g. Llama Guard's excluded categories).
        """
        extra = {"chat_template_kwargs": dict(template_vars)} if template_vars else {}
        return [self._content(choice) for choice in self._chat(conversations, sampling, progress, extra)]

    def chat_details(self, conversations: Sequence[Messages], sampling: Sampling, progress: Advance = None) -> list[Generation]:
        """Replies with each token's log-probability, top-10 entropy and top probability, from the API's ``top_logprobs``."""
        choices = self._chat(conversations, sampling, progress, {"logprobs": True, "top_logprobs": TOP_K_STATS})
        generations = []
        for choice in choices:
            steps = (choice.get("logprobs") or {}).get("content")
            if not isinstance(steps, list):
                raise EndpointError(f"{self.where}: the server returned no token log-probabilities (chat logprobs), which knowledge drift "
                                    "in chat mode needs; set evaluation.knowledgeGeneration: false or use an in-process target")
            logprobs, entropies, top_probs = [], [], []
            for step in steps:
                top = [t["logprob"] for t in step.get("top_logprobs") or [] if isinstance(t, dict) and "logprob" in t] or [step["logprob"]]
                entropy, top_prob = top_k_stats(top)
                logprobs.append(float(step["logprob"]))
                entropies.append(entropy)
                top_probs.append(top_prob)
            generations.append(Generation(text=self._content(choice), logprobs=tuple(logprobs), entropies=tuple(entropies), top_probs=tuple(top_probs)))
        return generations

    def complete(self, prompts: Sequence[str], sampling: Sampling, progress: Advance = None, templated: bool = False) -> list[str]:
        """One raw completion per prompt, from ``{url}/completions`` (the server tokenizes the text, special-token strings included)."""
        seeds = row_seeds(sampling.seed, len(prompts))

        def one(index: int) -> str:
            payload = {"model": self.spec.model, "prompt": prompts[index], **self._sampling_fields(sampling, seeds[index])}
            choice = self._choices(self.post("/completions", payload, "raw completions"), "/completions")[0]
            return str(choice.get("text") or "").strip()

        return self._run([lambda index=index: one(index) for index in range(len(prompts))], progress)

    def score(self, requests: Sequence[ScoreRequest], progress: Advance = None) -> list[ContinuationScore]:
        """Continuation log-probabilities from the prompt tokens ``{url}/completions`` echoes with ``logprobs`` (vLLM serves this).

        Knowledge drift's cloze scores and the red-team prompt perplexity need it; a server that cannot gets a clear error.
        """
        need = "prompt log-probabilities, which knowledge drift (cloze) and the red-team prompt perplexity need"

        def one(index: int) -> ContinuationScore:
            request = requests[index]
            text = request.prompt + request.continuation
            payload = {"model": self.spec.model, "prompt": text, "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 1}
            choice = self._choices(self.post("/completions", payload, need), "/completions")[0]
            logprobs = choice.get("logprobs") or {}
            offsets, values = logprobs.get("text_offset"), logprobs.get("token_logprobs")
            try:
                if not isinstance(offsets, list) or not isinstance(values, list):
                    raise ValueError("no echoed log-probabilities")
                return continuation_logprob(offsets, values, len(request.prompt), len(text))
            except ValueError as exc:
                raise EndpointError(f"{self.where}: POST /completions returned no usable {need} ({exc}); serve the model with vLLM "
                                    "or use an in-process model") from None

        return self._run([lambda index=index: one(index) for index in range(len(requests))], progress)

    def render(self, messages: Messages, **template_vars: Any) -> str:
        raise EndpointError(f"{self.where}: a served model's chat template stays on the server; send chat messages instead")
