"""SEAS runtime: the data plane. Engines, judges and the stage commands run by ``seas-runtime``.

Never imports kopf or the Kubernetes client; heavy libraries (torch, transformers,
TRL, vLLM) are imported lazily inside the functions that need them.
"""

__version__ = "0.1.0"
