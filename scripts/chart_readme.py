"""Generate the chart's README (charts/seas-operator/README.md) from Chart.yaml and values.yaml.

The values table follows helm-docs' conventions, so the comments read the same to
anyone who knows that tool:

- ``# -- description`` right above a key documents it; the comment lines after it
  continue the description (a blank line ends a comment block);
- ``# -- (type) description`` overrides the type shown, ``# @default -- text`` the default;
- a documented map is one row holding its whole default, followed by the rows of
  its keys that have their own description; a map without a description is
  broken down into its keys, each of which then needs one;
- every row needs a description: an undocumented key is an error, named with its path.

Usage (from the repository root)::

    python scripts/chart_readme.py            # rewrite charts/seas-operator/README.md
    python scripts/chart_readme.py --check    # exit 1 when it is stale or a key is undocumented
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART_DIR = ROOT / "charts" / "seas-operator"
COMMAND = "python scripts/chart_readme.py"

_KEY = re.compile(r"""^(?P<indent>\s*)(?P<key>"[^"]+"|'[^']+'|[^\s#:'"\-][^:#]*?)\s*:(?P<rest>\s.*|)$""")
_BLOCK_SCALAR = re.compile(r"^\s*[|>][-+0-9]*\s*(#.*)?$")
_TYPE_OVERRIDE = re.compile(r"^\((?P<type>[\w/\[\]., ]+)\)\s*(?P<text>.*)$")


class UndocumentedKeys(ValueError):
    """Keys of values.yaml without a ``# --`` description."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = list(keys)
        super().__init__("values.yaml keys without a `# --` description: " + ", ".join(self.keys))


@dataclass(frozen=True)
class Doc:
    """What the comment block above one key says."""

    description: str
    type: Optional[str] = None
    default: Optional[str] = None


@dataclass(frozen=True)
class Row:
    """One line of the values table."""

    key: str
    type: str
    default: str
    description: str


def _doc_from_comments(comments: Sequence[str]) -> Optional[Doc]:
    """The Doc of a comment block, or None when it has no ``# --`` line."""
    starts = [i for i, line in enumerate(comments) if re.match(r"^#\s*--(\s|$)", line)]
    if not starts:
        return None
    description: list[str] = []
    default: Optional[str] = None
    for i, line in enumerate(comments[starts[-1]:]):
        text = re.sub(r"^#\s?", "", line)
        if i == 0:
            text = re.sub(r"^\s*--\s*", "", text)
        stripped = text.strip()
        if stripped.startswith("@default --"):
            default = stripped[len("@default --"):].strip()
        elif stripped.startswith("@"):
            continue  # other helm-docs annotations (@section, ...) are not used here
        elif stripped:
            description.append(stripped)
    text = " ".join(description)
    override = _TYPE_OVERRIDE.match(text)
    if override:
        return Doc(override["text"], override["type"].strip(), default)
    return Doc(text, None, default)


def comment_docs(values_text: str) -> dict[tuple[str, ...], Doc]:
    """The documented keys of a values file, by path (a tuple of keys), from its comments."""
    docs: dict[tuple[str, ...], Doc] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    block_indent: Optional[int] = None
    for line in values_text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if block_indent is not None:
            if not stripped or indent > block_indent:
                continue  # inside a block scalar: text, not keys or comments
            block_indent = None
        if stripped.startswith("#"):
            pending.append(stripped)
            continue
        if not stripped:
            pending = []
            continue
        match = _KEY.match(line)
        if match:
            key = match["key"].strip("\"'")
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, key))
            doc = _doc_from_comments(pending)
            if doc is not None:
                docs[tuple(k for _, k in stack)] = doc
            if _BLOCK_SCALAR.match(match["rest"]):
                block_indent = indent
        pending = []
    return docs


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "string"


def _default(value: Any) -> str:
    if value is None:
        return "`nil`"
    return "`" + json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "`"


def value_rows(values_text: str) -> list[Row]:
    """The values table's rows, in file order; raises UndocumentedKeys naming every key without a description."""
    values = yaml.safe_load(values_text) or {}
    if not isinstance(values, dict):
        raise ValueError("values.yaml must be a mapping at the top level")
    docs = comment_docs(values_text)
    rows: list[Row] = []
    missing: list[str] = []

    def walk(node: dict, path: tuple[str, ...], inside_documented: bool) -> None:
        for key, value in node.items():
            here = path + (str(key),)
            doc = docs.get(here)
            dotted = ".".join(here)
            if doc is not None and doc.description:
                rows.append(Row(dotted, doc.type or _type(value), doc.default or _default(value), doc.description))
            elif not (isinstance(value, dict) and value) and not inside_documented:
                missing.append(dotted)
            if isinstance(value, dict) and value:
                # Inside a documented map, the keys with their own description get a row too.
                walk(value, here, inside_documented or doc is not None)

    walk(values, (), False)
    if missing:
        raise UndocumentedKeys(missing)
    return rows


def _cell(text: str, prose: bool = False) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    if prose:  # a bare <release> would be read as an HTML tag and vanish (code spans keep < as is)
        text = text.replace("<", "&lt;").replace(">", "&gt;")
    return text


def values_table(values_text: str) -> str:
    """The helm-docs style table (Key | Type | Default | Description) of a values file."""
    lines = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for row in value_rows(values_text):
        lines.append(f"| {_cell(row.key)} | {_cell(row.type)} | {_cell(row.default)} | {_cell(row.description, prose=True)} |")
    return "\n".join(lines) + "\n"


def _registry(values: dict) -> str:
    """The registry prefix of the operator image (ghcr.io/seas-dev), where the chart is published too."""
    repository = str(values.get("image", {}).get("repository", ""))
    return repository.rsplit("/", 1)[0] if "/" in repository else repository


def render_readme(chart_text: str, values_text: str) -> str:
    """The whole chart README: what the chart is, how to install it, and the values table."""
    chart = yaml.safe_load(chart_text)
    values = yaml.safe_load(values_text) or {}
    name, version, home = chart["name"], chart["version"], chart.get("home", "")
    docs = f"{home}/blob/main/docs/operations.md" if home else "docs/operations.md"
    return f"""<!-- Generated by `{COMMAND}` from Chart.yaml and values.yaml; edit those, then rerun it. -->
# {name}

{" ".join(str(chart.get("description", "")).split())}

**Chart version** {version} · **App version** {chart.get("appVersion", version)} · **Kubernetes** `{chart.get("kubeVersion", "any")}`

## Install

```sh
helm install {name} oci://{_registry(values)}/charts/{name} --version {version} \\
  --namespace seas-system --create-namespace
```

From a checkout of the repository, `helm install {name} charts/{name} ...` does the same.
The `SafetyEvolution` CRD (`seas.dev/v1alpha1`) is in the chart's `crds/` folder: Helm
installs it on first install only and never upgrades or deletes it, so after an upgrade
apply it yourself (`kubectl apply --server-side -f crds/safetyevolution.yaml` from the
unpacked chart).

The stage Jobs run the runtime image (vLLM, TRL and PEFT on CUDA 13.0): GPU nodes
need NVIDIA driver 580 or newer and a Turing (sm_75) or newer GPU.

The [operations guide]({docs}) covers namespaced and cluster-wide installs, the
status fields, the metrics and the alerts with a runbook for each.

## Values

{values_table(values_text)}"""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Write (or with --check, verify) the README of the chart in CHART_DIR."""
    parser = argparse.ArgumentParser(prog=COMMAND, description="Generate the chart README from values.yaml comments.")
    parser.add_argument("chart", nargs="?", default=str(CHART_DIR), help="chart folder (default: charts/seas-operator)")
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md is not what would be generated")
    args = parser.parse_args(argv)
    chart = Path(args.chart)
    try:
        text = render_readme((chart / "Chart.yaml").read_text(), (chart / "values.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"chart_readme: {exc}", file=sys.stderr)
        return 1
    readme = chart / "README.md"
    if args.check:
        if not readme.is_file() or readme.read_text() != text:
            print(f"chart_readme: {readme} is out of date with values.yaml; run `{COMMAND}`", file=sys.stderr)
            return 1
        return 0
    readme.write_text(text)
    print(f"wrote {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
