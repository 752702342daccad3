"""Test helpers that are not fixtures: the kmock emulator process, the operator harness, helm tools, Kubeflow schemas."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
SHIPPED_DATA = ROOT / "seas_runtime" / "data"


def head(name: str, n: int, out: Path) -> str:
    """Write the first ``n`` rows of shipped data set file ``name`` into folder ``out``; return the path."""
    path = out / name
    path.write_text("\n".join((SHIPPED_DATA / name).read_text().splitlines()[:n]) + "\n")
    return str(path)
