"""Validation errors as one line per problem, each naming its field path (no tracebacks for user mistakes)."""

from __future__ import annotations

from pydantic import ValidationError


def validation_problems(error: ValidationError) -> list[str]:
    """pydantic errors as ``field.path: message`` lines."""
    lines = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "required field is missing"
        lines.append(f"{path}: {message}")
    return lines
