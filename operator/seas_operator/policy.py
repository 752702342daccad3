"""The operator's policy on what a SafetyEvolution may run: allowed runtime images and GPUs per stage pod.

Whoever may create a SafetyEvolution runs pods under the operator's hand, so the
platform team can bound that in the chart (``policy.allowedImages``,
``policy.maxGPUsPerStage``). The check is pure; the reconciler turns its
problems into ``Degraded`` with reason ``InvalidSpec`` before any child exists,
and again before each launch (a spec the operator accepted earlier may have
become disallowed after a policy change).

Image prefixes match on a boundary of the reference: ``registry.example/seas``
allows ``registry.example/seas/runtime:1`` and ``registry.example/seas:1``
but not ``registry.example/seas-evil/x``; a prefix ending in ``/``, ``:`` or
``@`` matches anything after it. Images are compared as written (no
``docker.io/library/`` normalization), so list them as the specs write them.
"""

from __future__ import annotations

from typing import Optional, Sequence

from .api import SafetyEvolutionSpec

_BOUNDARIES = ("/", ":", "@")


def image_allowed(image: str, prefixes: Sequence[str]) -> bool:
    """Whether ``image`` starts with one of ``prefixes`` on a reference boundary (every image when there are none)."""
    if not prefixes:
        return True
    for prefix in prefixes:
        if image == prefix:
            return True
        if image.startswith(prefix) and (prefix.endswith(_BOUNDARIES) or image[len(prefix)] in _BOUNDARIES):
            return True
    return False


def policy_problems(spec: SafetyEvolutionSpec, *, default_image: str, allowed_images: Sequence[str],
                    max_gpus_per_stage: Optional[int]) -> list[str]:
    """One line per way ``spec`` breaks the policy, each naming the field and what is allowed (empty: it complies)."""
    problems = []
    image = spec.image or default_image
    if not image_allowed(image, allowed_images):
        allowed = ", ".join(allowed_images)
        if spec.image:
            problems.append(f"spec.image {image!r} is not allowed by the operator's policy.allowedImages; "
                            f"images must start with one of: {allowed}")
        else:
            problems.append(f"the operator's default runtime image {image!r} (spec.image is unset) is not allowed by its "
                            f"policy.allowedImages; set spec.image to an image starting with one of: {allowed}")
    gpus = spec.resources.gpus
    if max_gpus_per_stage is not None and gpus > max_gpus_per_stage:
        problems.append(f"spec.resources.gpus {gpus} exceeds the operator's policy.maxGPUsPerStage: "
                        f"at most {max_gpus_per_stage} GPU{'s' if max_gpus_per_stage != 1 else ''} per stage pod")
    return problems


__all__ = ["image_allowed", "policy_problems"]
