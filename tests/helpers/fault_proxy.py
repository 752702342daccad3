"""An HTTP proxy in front of the API emulator that injects faults: error statuses, and requests that never answer.

The operator (or a ``Kube`` client in the test process) talks to the proxy as to
a kube-apiserver; every request goes through to the emulator unless a rule
matches it. Rules are set from the test through :meth:`FaultProxy.set` or, for
an operator in another process, by POSTing the same JSON to ``/__faults``.
Watches stream through untouched, so kopf keeps working while calls fail.
"""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass
from typing import Optional

import aiohttp
import aiohttp.web

HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass(frozen=True)
class Fault:
    """Requests whose method and path (with query) match get ``status``, or no answer at all when ``block``."""

    method: str  # GET, POST, PATCH, DELETE, or * for any
    path: str  # a regular expression searched in the path and query
    status: int = 503
    block: bool = False
    times: Optional[int] = None  # how many requests it hits before it lifts (None: until cleared)


class FaultProxy:
    """Start with :meth:`start` (returns the proxy's URL); :attr:`hits` counts the requests each fault answered."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults: list[Fault] = []
        self.left: dict[int, Optional[int]] = {}
        self.hits: dict[int, int] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request that passed or was faulted
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Optional[aiohttp.web.AppRunner] = None
        self.url = ""

    def set(self, *faults: Fault) -> None:
        """Replace the rules."""
        with self._lock:
            self.faults = list(faults)
            self.left = {i: f.times for i, f in enumerate(faults)}
            self.hits = {i: 0 for i in range(len(faults))}

    def clear(self) -> None:
        self.set()

    def _match(self, method: str, path: str) -> Optional[Fault]:
        with self._lock:
            self.requests.append((method, path))
            for i, fault in enumerate(self.faults):
                if fault.method in ("*", method) and re.search(fault.path, path) and self.left[i] != 0:
                    if self.left[i] is not None:
                        self.left[i] -= 1
                    self.hits[i] += 1
                    return fault
        return None

    async def _handle(self, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        if request.path == "/__faults":
            body = await request.json()
            self.set(*(Fault(**f) for f in body))
            return aiohttp.web.json_response({"faults": len(body)})
        fault = self._match(request.method, request.path_qs)
        if fault is not None and fault.block:
            await asyncio.sleep(3600)  # a half-open connection: the client's timeout must end it
        if fault is not None:
            return aiohttp.web.json_response(
                {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": fault.status, "reason": "ServiceUnavailable",
                 "message": f"injected fault: HTTP {fault.status}"}, status=fault.status)
        data = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        assert self._session is not None
        async with self._session.request(request.method, self.upstream + request.path_qs, data=data, headers=headers) as upstream:
            response = aiohttp.web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS | {"content-encoding"}})
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():  # watches stream line by line
                await response.write(chunk)
            await response.write_eof()
            return response

    def start(self) -> str:
        """Serve on 127.0.0.1 in a background thread; returns the base URL."""
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = aiohttp.web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = aiohttp.web.AppRunner(app)
            loop.run_until_complete(self._runner.setup())
            site = aiohttp.web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())

            async def session() -> aiohttp.ClientSession:  # a session belongs to the loop that runs it
                return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False)

            self._session = loop.run_until_complete(session())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            loop.run_forever()

        self._session: Optional[aiohttp.ClientSession] = None
        threading.Thread(target=serve, name="fault-proxy", daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self.url

    def stop(self) -> None:
        """Stop serving; requests held by a ``block`` fault and open watches are dropped, not awaited."""
        if self._loop is None:
            return

        async def shutdown() -> None:
            if self._session is not None:
                await self._session.close()  # ends the watches streaming from the emulator, so it can stop too
            if self._runner is not None:
                for site in list(self._runner.sites):
                    await site.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
