"""``seas operator``: parse the settings once, win the leader-election Lease, then run the kopf handlers.

Several replicas may run (the chart runs two): each waits as a standby until it
holds the Lease (``leader``), serving only ``/healthz`` and an empty ``/metrics``
meanwhile, and then runs kopf with metrics and kopf's health endpoint on the same
ports. ``--no-leader-election`` skips the Lease, for a single process in development.
"""

from __future__ import annotations

import argparse
import http.server
import logging
import os
import signal
import sys
import threading
from typing import Any

import kopf

from .handlers import OperatorState, build_registry
from .leader import LeaderElector, exit_on_lost, lease_api, make_identity
from .settings import OperatorSettings, SettingsError, load_settings

log = logging.getLogger("seas_operator.operator")


def run_operator(args: argparse.Namespace) -> int:
    """Run until interrupted; watches the given namespaces or all of them."""
    try:
        settings = load_settings(os.environ, namespaces=args.namespace, metrics_port=args.metrics_port, health_port=args.health_port)
    except SettingsError as exc:
        print(f"seas operator: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kopf logs every handler run at INFO ("Timer 'on_timer' succeeded"); our own log says what happened.
    logging.getLogger("kopf.objects").setLevel(max(logging.WARNING, logging.getLogger().level))
    if getattr(args, "no_leader_election", False):
        log.warning("leader election is off: run only one operator process against this cluster")
        _run_kopf(settings)
        return 0

    elector = LeaderElector(lease_api(), settings.leader_namespace, settings.leader_lease_name, make_identity(os.environ),
                            lease_seconds=settings.leader_lease_seconds, renew_seconds=settings.leader_renew_seconds,
                            retry_seconds=settings.leader_retry_seconds)
    if not _wait_for_leadership(elector, settings):
        log.info("stopped while standby for lease %s", elector.where)
        return 0
    elector.start_renewing(on_lost=exit_on_lost)
    try:
        _run_kopf(settings)
    finally:
        # kopf has stopped acting: stop renewing, then hand the Lease to a standby at once.
        elector.stop_renewing()
        elector.release()
    return 0


def _run_kopf(settings: OperatorSettings) -> None:
    # standalone: kopf's own peering is off; the Lease is what keeps a second replica from acting.
    kopf.run(
        registry=build_registry(settings),
        memo=kopf.Memo(state=OperatorState(settings=settings)),
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None,
    )


def _wait_for_leadership(elector: LeaderElector, settings: OperatorSettings) -> bool:
    """Block until this process holds the Lease (True) or SIGTERM/SIGINT arrives first (False)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    # kopf's endpoints only exist once kopf runs: until then the standby answers the probes itself,
    # or Kubernetes would restart a healthy standby over and over.
    servers = [_StandbyServer(port) for port in (settings.health_port, settings.metrics_port) if port]
    try:
        acquired = elector.acquire(stop)
        if acquired and stop.is_set():  # the signal came while the winning attempt ran: hand the Lease back
            elector.release()
            return False
        return acquired
    finally:
        for server in servers:  # free the ports for kopf's liveness endpoint and the metrics server
            server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _StandbyHandler(http.server.BaseHTTPRequestHandler):
    """``/healthz``: ok; ``/metrics``: nothing (the leader exports the status metrics, a standby would double them)."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._reply(200, b"ok\n", "text/plain")
        elif path == "/metrics":
            self._reply(200, b"# standby: the leader exports the metrics\n", "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._reply(404, b"not found\n", "text/plain")

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - probes every few seconds would flood the log
        pass


class _StandbyServer:
    """A tiny HTTP server in a daemon thread, closed before kopf takes the port."""

    def __init__(self, port: int) -> None:
        self.server = http.server.ThreadingHTTPServer(("0.0.0.0", port), _StandbyHandler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, name=f"standby-{port}", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
