"""Compact pickles for the frozen dataclasses that cross process boundaries.

A frozen dataclass with slots pickles through the ``__getstate__``/``__setstate__`` pair that
:mod:`dataclasses` generates: every load calls :func:`dataclasses.fields` and sets each field
with ``object.__setattr__``, and every dump builds the state list the same way. The process
executor sends each attempt's :class:`~kaon.executors.base.TaskRequest` to a worker and receives
its events back as such objects, so the engine paid this on every step of a chain.

:func:`by_fields` gives a class a ``__reduce__`` that pickles its fields as one tuple (read by
a single :func:`operator.attrgetter`) and loads them by calling the class: measured on a chain
step's events message, a load in 3.6 µs instead of 8.0 and a dump in 3.9 µs instead of 6.1,
and a smaller pickle. :func:`copy.copy` and :func:`copy.deepcopy` use it too.
"""

from __future__ import annotations

import dataclasses
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T")


def by_fields(cls: type[T]) -> type[T]:
    """Class decorator (above ``@dataclass``): pickle instances of ``cls`` as
    ``cls(*fields)``. Every field must be an ``__init__`` parameter."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if not fields or any(not f.init for f in fields):
        raise TypeError(f"{cls.__name__}: by_fields needs fields that are all init parameters")
    get = attrgetter(*(f.name for f in fields))

    if len(fields) == 1:  # attrgetter of one name returns the value, not a 1-tuple

        def __reduce__(self: Any) -> tuple[type[T], tuple[Any, ...]]:
            return cls, (get(self),)

    else:

        def __reduce__(self: Any) -> tuple[type[T], tuple[Any, ...]]:
            return cls, get(self)

    cls.__reduce__ = __reduce__  # type: ignore[assignment,method-assign]
    return cls
