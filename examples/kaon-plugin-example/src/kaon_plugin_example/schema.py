"""Validate a step type's config with a pydantic model, reporting Kaon problems with fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kaon.errors import Location, Problem

ModelT = TypeVar("ModelT", bound=BaseModel)


def check_config(
    model: type[ModelT], config: Mapping[str, Any], location: Location
) -> tuple[ModelT | None, list[Problem]]:
    """``(the parsed config, [])``, or ``(None, problems)`` with one problem per pydantic error,
    each located at ``location`` plus ``config.<failing field>`` (``config.delimiter``)."""
    try:
        return model.model_validate(dict(config)), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or None
            where = location.with_field(f"config.{field}" if field else "config")
            problems.append(Problem(error["msg"], where))
        return None, problems
