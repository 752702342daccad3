"""``seas operator``: run the kopf handlers with metrics and a health endpoint."""

from __future__ import annotations

import argparse
import logging
import os


def run_operator(args: argparse.Namespace) -> int:
    """Run until interrupted; watches the given namespaces or all of them."""
    os.environ["SEAS_METRICS_PORT"] = str(args.metrics_port)
    import kopf

    from . import handlers  # noqa: F401  (registers the handlers)

    logging.basicConfig(level=os.environ.get("SEAS_LOG_LEVEL", "INFO").upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kopf logs every handler run at INFO ("Timer 'on_timer' succeeded"); our own log says what happened.
    logging.getLogger("kopf.objects").setLevel(max(logging.WARNING, logging.getLogger().level))
    namespaces = args.namespace or []
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None,
    )
    return 0
