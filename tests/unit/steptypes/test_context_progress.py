"""``ctx.progress``: done of total, a fraction, a message; the older (fraction, message)."""

from __future__ import annotations

from typing import Any

import pytest

from kaon.model.events import ProgressReported
from kaon.steptypes.context import StepContext


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((30, 200), {}, (0.15, 30.0, 200.0, "")),
        ((250, 200), {"message": "over"}, (1.0, 250.0, 200.0, "over")),
        ((0.4,), {}, (0.4, None, None, "")),
        ((0.5, "halfway"), {}, (0.5, None, None, "halfway")),
        ((None,), {"message": "warming up"}, (None, None, None, "warming up")),
        ((3, 0), {}, (None, None, None, "")),
    ],
)
def test_progress_forms(args: tuple[Any, ...], kwargs: dict[str, Any], expected: Any) -> None:
    seen: list[ProgressReported] = []
    ctx = StepContext(("r", 1, 1), "s", "w", {}, lambda event: seen.append(event))  # type: ignore[arg-type,return-value]
    ctx.progress(*args, **kwargs)
    (event,) = seen
    assert (event.fraction, event.done, event.total, event.message) == expected
