"""One loaded model at a time: stages ask the pool for the model they need next."""

from __future__ import annotations

import logging
from typing import Optional

from .engines import Engine, open_engine
from .settings import ModelRef

log = logging.getLogger(__name__)


class EnginePool:
    """Keeps one model loaded and reuses it while the same model is asked for again."""

    def __init__(self, cache: Optional[str], batch_size: int, seed: int) -> None:
        self.cache, self.batch_size, self.seed = cache, batch_size, seed
        self._key: Optional[tuple] = None
        self._engine: Optional[Engine] = None

    def get(self, ref: ModelRef, scoring: bool = False) -> Engine:
        """The engine for ``ref``, loading it (and freeing the previous one) when it is not the current one.

        ``scoring``: the engine will also score text (vLLM then runs without prefix caching).
        """
        # A served model is keyed by its whole endpoint: two judges on different servers are different engines.
        endpoint = ref.endpoint.model_dump_json() if ref.endpoint is not None else None
        key = (ref.model, endpoint, ref.engine, ref.dtype, ref.tensorParallelSize, ref.gpuMemoryUtilization, scoring)
        if key != self._key:
            self.close()
            log.info("loading %s", ref.label)
            self._engine = open_engine(ref, self.cache, self.batch_size, self.seed, scoring=scoring)
            self._key = key
        assert self._engine is not None
        return self._engine

    def close(self) -> None:
        """Free the loaded model."""
        if self._engine is not None:
            self._engine.close()
        self._engine, self._key = None, None
