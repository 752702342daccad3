"""Progress lines on stdout for the executor to draw bars from; logs go to stderr."""

from __future__ import annotations

import json
import sys
import time
from typing import Callable


class Progress:
    """Emits ``{"progress": {"task", "done", "total"}}`` JSON lines, at most a few per second."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdout
        self._last = 0.0

    def task(self, name: str, total: int) -> Callable[[int], None]:
        """Start a task of ``total`` units; the returned callback advances it."""
        state = {"done": 0}
        self._emit(name, 0, total, force=True)

        def advance(units: int) -> None:
            state["done"] += units
            self._emit(name, state["done"], total, force=state["done"] >= total)

        return advance

    def _emit(self, name: str, done: int, total: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.5:
            return
        self._last = now
        self.stream.write(json.dumps({"progress": {"task": name, "done": done, "total": total}}) + "\n")
        self.stream.flush()
