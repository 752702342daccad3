"""The chart's README is generated from values.yaml comments (scripts/chart_readme.py,
helm-docs conventions) and kept up to date; Chart.yaml's Artifact Hub annotations
say true things. About 1 s, no helm."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib

import pytest
import yaml

from seas_operator.api import SafetyEvolution
from tests.helpers import ROOT

CHART = ROOT / "charts" / "seas-operator"
SCRIPT = ROOT / "scripts" / "chart_readme.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("chart_readme", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["chart_readme"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


chart_readme = _load_script()


# --------------------------------------------------------------------------- the committed README


def test_committed_readme_is_up_to_date():
    expected = chart_readme.render_readme((CHART / "Chart.yaml").read_text(), (CHART / "values.yaml").read_text())
    actual = (CHART / "README.md").read_text() if (CHART / "README.md").is_file() else ""
    assert actual == expected, (
        "charts/seas-operator/README.md is out of date with values.yaml or Chart.yaml: "
        "run `.venv/bin/python scripts/chart_readme.py` and commit the result"
    )


def test_every_value_is_in_the_table():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    keys = {row.key for row in chart_readme.value_rows((CHART / "values.yaml").read_text())}
    for top, value in values.items():
        assert top in keys or any(k.startswith(f"{top}.") for k in keys), f"{top} is missing from the README table"
    readme = (CHART / "README.md").read_text()
    assert "| image.repository | string | `\"ghcr.io/seas-dev/seas-operator\"` |" in readme


# --------------------------------------------------------------------------- the generator


VALUES = """\
# Header comment: not a description.

# -- Operator replicas.
# One leads, the others wait.
replicaCount: 2
image:
  # -- Image repository.
  repository: example/op
  # -- (string) Tag; appVersion when empty.
  tag:
# -- Resources of the container.
resources:
  requests: {cpu: 100m}
  # -- Its limits.
  limits: {memory: 1Gi}
# -- Extra env.
# @default -- none
extraEnv:
  - name: A
    value: "a|b"
# -- Alert rules text.
rules: |
  # -- not a key comment
  expr: up == 0
# -- After the block scalar.
after: true
"""


def test_rows_follow_helm_docs_conventions():
    rows = {row.key: row for row in chart_readme.value_rows(VALUES)}
    assert list(rows) == ["replicaCount", "image.repository", "image.tag", "resources", "resources.limits", "extraEnv", "rules", "after"]
    assert rows["replicaCount"] == chart_readme.Row("replicaCount", "int", "`2`", "Operator replicas. One leads, the others wait.")
    assert rows["image.tag"].type == "string" and rows["image.tag"].default == "`nil`"
    assert rows["image.tag"].description == "Tag; appVersion when empty."
    assert rows["resources"].type == "object"
    assert rows["resources"].default == '`{"requests":{"cpu":"100m"},"limits":{"memory":"1Gi"}}`'
    assert rows["resources.limits"].description == "Its limits.", "a documented map's own documented keys are listed"
    assert rows["extraEnv"].default == "none"
    assert rows["after"].description == "After the block scalar."


def test_table_escapes_pipes_and_angle_brackets():
    table = chart_readme.values_table("# -- Prefix (default: <release>-x), a|b.\nname: \"a|b\"\n")
    assert "| name | string | `\"a\\|b\"` | Prefix (default: &lt;release&gt;-x), a\\|b. |" in table


def test_undocumented_keys_are_named():
    with pytest.raises(chart_readme.UndocumentedKeys) as err:
        chart_readme.value_rows("image:\n  # -- Documented.\n  repository: x\n  pullPolicy: Always\n\n# -- Gap below.\n\nloose: 1\n")
    assert err.value.keys == ["image.pullPolicy", "loose"]


def _chart(tmp_path, values: str):
    chart = tmp_path / "chart"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: 1.2.3\n")
    (chart / "values.yaml").write_text(values)
    return chart


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_cli_check_fails_on_a_stale_readme_and_says_what_to_run(tmp_path):
    chart = _chart(tmp_path, "# -- Replicas.\nreplicaCount: 1\n")
    proc = _cli(str(chart), "--check")
    assert proc.returncode == 1 and "run `python scripts/chart_readme.py`" in proc.stderr
    assert _cli(str(chart)).returncode == 0
    assert "| replicaCount | int | `1` | Replicas. |" in (chart / "README.md").read_text()
    assert _cli(str(chart), "--check").returncode == 0
    (chart / "values.yaml").write_text("# -- Replicas.\nreplicaCount: 3\n")
    assert _cli(str(chart), "--check").returncode == 1


def test_cli_names_undocumented_keys_in_one_line(tmp_path):
    chart = _chart(tmp_path, "replicaCount: 1\n")
    proc = _cli(str(chart))
    assert proc.returncode == 1
    assert proc.stderr.strip() == "chart_readme: values.yaml keys without a `# --` description: replicaCount"
    assert not (chart / "README.md").exists()


# --------------------------------------------------------------------------- Artifact Hub annotations


def _annotations() -> dict:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())["annotations"]


def test_artifacthub_metadata():
    notes = _annotations()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert notes["artifacthub.io/license"] == project["license"]["text"]
    assert notes["artifacthub.io/operator"] == "true"
    assert notes["artifacthub.io/category"] == "ai-machine-learning"
    links = yaml.safe_load(notes["artifacthub.io/links"])
    assert links and all(set(link) == {"name", "url"} and link["url"].startswith("https://") for link in links)


def test_artifacthub_images_follow_the_version_and_values():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    images = {i["name"]: i["image"] for i in yaml.safe_load(chart["annotations"]["artifacthub.io/images"])}
    assert images == {
        "seas-operator": f"{values['image']['repository']}:{chart['appVersion']}",
        "seas-runtime": f"{values['runtime']['image']['repository']}:{chart['appVersion']}",
    }


def test_artifacthub_crd_matches_the_chart_crd():
    crd = yaml.safe_load((CHART / "crds" / "safetyevolution.yaml").read_text())
    (entry,) = yaml.safe_load(_annotations()["artifacthub.io/crds"])
    assert entry["name"] == crd["metadata"]["name"]
    assert entry["kind"] == crd["spec"]["names"]["kind"]
    assert entry["version"] in [v["name"] for v in crd["spec"]["versions"]]


def test_artifacthub_example_is_the_shipped_example_and_valid():
    (example,) = yaml.safe_load(_annotations()["artifacthub.io/crdsExamples"])
    shipped = yaml.safe_load((ROOT / "examples" / "evolution.yaml").read_text())
    assert example == shipped, "copy examples/evolution.yaml into Chart.yaml's artifacthub.io/crdsExamples"
    evolution = SafetyEvolution.model_validate(example)
    assert re.match(r"embedded:", evolution.spec.target.model), "the example the runtime image runs as written"
