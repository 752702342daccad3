"""SEAS Operator control plane: API model, planner, executors, Kubernetes builders and handlers.

Nothing here imports torch, transformers or vLLM; the data plane lives in ``seas_runtime``.
"""

__version__ = "0.1.0"
