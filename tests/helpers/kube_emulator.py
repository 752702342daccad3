"""A standalone Kubernetes API emulator (kmock) for the end-to-end tests and the benchmark.

Run as ``python -m tests.helpers.kube_emulator URL_FILE`` from the repository root: serves over real HTTP on
127.0.0.1 and writes its base URL to URL_FILE once ready. The operator (a
separate process) and the tests (with the ``kubernetes`` client) talk to it
like to a kube-apiserver.

What it cannot prove: schema validation, defaulting, RBAC, admission and the
real Job/Pod controllers (the tests play the job controller themselves).

Optimistic concurrency: kmock serves no PUT and assigns no ``resourceVersion``.
``Emulator`` adds both, minimally: a create gets a ``resourceVersion`` when it has
none, and a PUT (update) replaces the object only when the ``resourceVersion`` it
carries is the stored one (else 409 Conflict, as the API server), then assigns a new
one. A PATCH still leaves ``resourceVersion`` as it was (kopf's watch relies on
kmock's behaviour there), so a PUT after another client's PATCH is not refused; the
leader-election Lease is only ever created and PUT, so its conflicts are real.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import signal
import uuid
import sys
from pathlib import Path

import aiohttp.web
import kmock

_SUFFIX = itertools.count(1)
_VERSIONS = itertools.count(1)  # resourceVersions, one counter for all objects as in etcd


class Emulator(kmock.KubernetesEmulator):
    """kmock plus ``metadata.generateName`` (kopf names its Events that way) and PUT with resourceVersion checks."""

    requests_served = 0
    requests_by_action: dict = {}
    creates_by_plural: dict = {}  # for the tests: objects created, and 409 conflicts, per resource plural
    conflicts_by_plural: dict = {}

    # kmock has no public hook that sees a request before the emulator stores it, so this overrides its
    # request handler (a private method; the rest goes through kmock's public API).
    async def _handle(self, request):
        Emulator.requests_served += 1
        action = getattr(request.action, "name", str(request.action))
        Emulator.requests_by_action[action] = Emulator.requests_by_action.get(action, 0) + 1
        if request.resource is not None and request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = f"{meta['generateName']}{next(_SUFFIX):05d}"
            meta.setdefault("resourceVersion", str(next(_VERSIONS)))
            # Ownership is checked by uid, so objects need one, as the API server gives them.
            meta.setdefault("uid", str(uuid.uuid4()))
        if request.resource is not None and request.method == kmock.method.PUT and request.name and not request.subresource:
            response = await self._replace(request)
        else:
            try:
                response = await super()._handle(request)
            except kmock.KubernetesError as exc:
                if exc.status == 409 and request.resource is not None:
                    _count(Emulator.conflicts_by_plural, request.resource.plural)
                raise
        if request.resource is not None and request.action == kmock.action.CREATE and response.status < 300:
            _count(Emulator.creates_by_plural, request.resource.plural)
        return response

    async def _replace(self, request) -> aiohttp.web.StreamResponse:
        """PUT: replace the whole object if the resourceVersion it carries (if any) is the stored one."""
        key = (request.resource, request.namespace, request.name)
        body = request.data if isinstance(request.data, dict) else {}
        what = f"{request.resource.plural} {request.name!r}"
        async with self._lock:
            if key not in self._objects or self._objects[key].deleted:
                return _status(404, "NotFound", f"{what} not found")
            stored = self._objects[key]
            sent = (body.get("metadata") or {}).get("resourceVersion")
            if sent and sent != (stored.get("metadata") or {}).get("resourceVersion"):
                _count(Emulator.conflicts_by_plural, request.resource.plural)
                return _status(409, "Conflict", f"Operation cannot be fulfilled on {what}: the object has been modified; "
                                                "please apply your changes to the latest version and try again")
            new = copy.deepcopy(body)
            new.setdefault("metadata", {})["resourceVersion"] = str(next(_VERSIONS))
            stored.history.append(new)
            raw = stored.raw
            await self._buses[request.resource].put({"type": "MODIFIED", "object": raw})
        return aiohttp.web.json_response(raw)


def _count(counts: dict, key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _status(code: int, reason: str, message: str) -> aiohttp.web.StreamResponse:
    """A Kubernetes Status error response."""
    return aiohttp.web.json_response({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                                      "reason": reason, "message": message, "code": code}, status=code)


ALL = {"get", "list", "watch", "create", "patch", "update", "delete"}

RESOURCES = {
    "v1/namespaces": {"kind": "Namespace", "namespaced": False, "verbs": ALL},
    "v1/pods": {"kind": "Pod", "namespaced": True, "verbs": ALL, "subresources": {"status"}},
    "v1/events": {"kind": "Event", "namespaced": True, "verbs": ALL},
    "events.k8s.io/v1/events": {"kind": "Event", "namespaced": True, "verbs": ALL},
    "apiextensions.k8s.io/v1/customresourcedefinitions": {"kind": "CustomResourceDefinition", "namespaced": False, "verbs": ALL},
    "batch/v1/jobs": {"kind": "Job", "namespaced": True, "verbs": ALL, "subresources": {"status"}},
    "kubeflow.org/v1/pytorchjobs": {"kind": "PyTorchJob", "namespaced": True, "verbs": ALL, "subresources": {"status"}},
    "trainer.kubeflow.org/v1alpha1/trainjobs": {"kind": "TrainJob", "namespaced": True, "verbs": ALL, "subresources": {"status"}},
    "seas.dev/v1alpha1/safetyevolutions": {"kind": "SafetyEvolution", "namespaced": True, "verbs": ALL, "subresources": {"status"}},
    # The operator's leader election.
    "coordination.k8s.io/v1/leases": {"kind": "Lease", "namespaced": True, "verbs": ALL},
}


async def serve(url_file: Path) -> None:
    async with Emulator() as emulator, kmock.Server(emulator) as server:
        for key, info in RESOURCES.items():
            emulator.resources[key] = info
        url_file.write_text(str(server.url).rstrip("/"))
        stats = url_file.with_suffix(".stats")

        async def write_stats() -> None:  # for the benchmark: API requests served, by action
            while True:
                stats.write_text(json.dumps({"requests": Emulator.requests_served, "by_action": Emulator.requests_by_action,
                                             "creates": Emulator.creates_by_plural, "conflicts": Emulator.conflicts_by_plural}))
                await asyncio.sleep(0.5)

        writer = asyncio.create_task(write_stats())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        writer.cancel()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1])))
