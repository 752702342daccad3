"""Fixtures of the end-to-end tests: the operator as its own process against the emulator (``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers.operator_harness import Emulator, OperatorProcess


@pytest.fixture()
def operator(emulator: Emulator, tmp_path: Path) -> Iterator[OperatorProcess]:
    """``seas operator`` running against ``emulator``; stopped after the test."""
    op = OperatorProcess(emulator, tmp_path)
    op.start()
    yield op
    op.stop()
