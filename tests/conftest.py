"""Fixtures shared across the suite.

The layout mirrors the code: ``seas_operator/`` and ``seas_runtime/`` hold one
test module per module of those packages, ``deploy/`` the chart, alerts,
dashboard and images, ``e2e/`` the end-to-end runs, and ``helpers/`` what the
tests use that is not a fixture.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.helpers import head
from tests.helpers.operator_harness import Emulator


@pytest.fixture()
def tiny_data(tmp_path: Path) -> Callable[[str, int], str]:
    """``tiny_data(file, n)``: a copy of the first ``n`` rows of a shipped data set, for tests that run the model."""
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    return lambda name, n: head(name, n, folder)


@pytest.fixture(scope="session")
def embedded_cache() -> Path:
    """The embedded model materialized as safetensors (once per machine)."""
    from seas_runtime.models import materialize_embedded

    return materialize_embedded("smollm2-135m-instruct", os.environ.get("SEAS_CACHE_DIR"))


@pytest.fixture()
def emulator(tmp_path: Path) -> Iterator[Emulator]:
    """The kmock Kubernetes API emulator, serving real HTTP from its own process."""
    emu = Emulator(tmp_path)
    yield emu
    emu.close()
