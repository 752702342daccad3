"""Tiny copies of the shipped data sets, for tests that run the real model."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "seas_runtime" / "data"


def head(name: str, n: int, out: Path) -> str:
    """Write the first ``n`` rows of shipped set ``name`` into ``out``; return the path."""
    path = out / name
    path.write_text("\n".join((DATA / name).read_text().splitlines()[:n]) + "\n")
    return str(path)
