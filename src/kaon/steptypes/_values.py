"""Step inputs as the plain values a tool outside Python reads.

A Python step computing on pandas or numpy returns numpy numbers (``df["age"].max()`` is an
``np.int64``, a threshold an ``np.float32``). The tools other step types hand inputs to
take Python numbers only: a database driver refuses to bind them, ``json.dumps`` refuses
them (``default=str`` made ``3`` the string ``"3"`` in ``$KAON_INPUT_X`` and R's
``kaon_input``), papermill cannot inject them. So every step type turns them into the
Python number of the same value first, as run parameters are (see ``kaon.model.params``).
"""

from __future__ import annotations

import os
from typing import Any


def plain_number(value: Any) -> Any:
    """A numpy number or bool as the Python int, float or bool of the same value; anything
    else as it is."""
    if type(value).__module__ != "numpy" or getattr(value, "ndim", None) != 0:
        return value
    kind = getattr(getattr(value, "dtype", None), "kind", "")
    return value.item() if kind and kind in "biuf" else value


def plain_value(value: Any) -> Any:
    """:func:`plain_number`, and a path (a file input: an upstream step's ``pathlib.Path``)
    as its string, which a database driver binds (``read_parquet($p)``)."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return plain_number(value)


def json_default(value: Any) -> Any:
    """``json.dumps``' ``default`` for step inputs: a numpy number as its number, anything
    else JSON cannot write as its ``str``."""
    plain = plain_number(value)
    return str(value) if plain is value else plain
