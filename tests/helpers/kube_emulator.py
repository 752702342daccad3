"""A standalone Kubernetes API emulator (kmock) for the end-to-end tests and the benchmark.

Run as ``python -m tests.helpers.kube_emulator URL_FILE`` from the repository root: serves over real HTTP on
127.0.0.1 and writes its base URL to URL_FILE once ready. The operator (a
separate process) and the tests (with the ``kubernetes`` client) talk to it
like to a kube-apiserver.

What it cannot prove: schema validation, defaulting, RBAC, admission and the
real Job/Pod controllers (the tests play the job controller themselves).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import sys
from pathlib import Path

import kmock

_SUFFIX = itertools.count(1)


class Emulator(kmock.KubernetesEmulator):
    """kmock plus ``metadata.generateName`` (kopf names its Events that way)."""

    requests_served = 0
    requests_by_action: dict = {}

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
        return await super()._handle(request)

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
}


async def serve(url_file: Path) -> None:
    async with Emulator() as emulator, kmock.Server(emulator) as server:
        for key, info in RESOURCES.items():
            emulator.resources[key] = info
        url_file.write_text(str(server.url).rstrip("/"))
        stats = url_file.with_suffix(".stats")

        async def write_stats() -> None:  # for the benchmark: API requests served, by action
            while True:
                stats.write_text(json.dumps({"requests": Emulator.requests_served, "by_action": Emulator.requests_by_action}))
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
