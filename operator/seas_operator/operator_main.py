"""``seas operator``: parse the settings once, then run the kopf handlers with metrics and a health endpoint."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import kopf

from .handlers import OperatorState, build_registry
from .settings import SettingsError, load_settings


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
    kopf.run(
        registry=build_registry(settings),
        memo=kopf.Memo(state=OperatorState(settings=settings)),
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None,
    )
    return 0
