"""What several stages share: an engine pool and the judge factory."""

from __future__ import annotations

import logging
from typing import Optional

from seas_operator.api import ClassifierSpec, ModelRef

from ..engines import Engine, open_engine
from ..judges import Judge, make_judge

log = logging.getLogger(__name__)


class EnginePool:
    """Keeps one model loaded at a time and reuses it when the same model is asked for again."""

    def __init__(self, cache: Optional[str], batch_size: int, seed: int) -> None:
        self.cache, self.batch_size, self.seed = cache, batch_size, seed
        self._key: Optional[tuple] = None
        self._engine: Optional[Engine] = None

    def get(self, ref: ModelRef) -> Engine:
        key = (ref.model, ref.engine, ref.dtype, ref.tensorParallelSize)
        if key != self._key:
            self.close()
            log.info("loading %s", ref.model)
            self._engine = open_engine(ref, self.cache, self.batch_size, self.seed)
            self._key = key
        assert self._engine is not None
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
        self._engine, self._key = None, None


def judge_for(spec: ClassifierSpec, pool: EnginePool) -> Judge:
    """The configured judge; a model judge is loaded through the pool."""
    return make_judge(spec, lambda: pool.get(ModelRef(model=spec.model, engine=spec.engine)))
