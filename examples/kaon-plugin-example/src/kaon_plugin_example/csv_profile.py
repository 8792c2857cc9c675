"""The ``csv_profile`` step type: profile the columns of a CSV file, with the standard library.

Configuration (validated at definition time by :class:`ProfileConfig`)::

    {"file": "users.csv",        # or give the step an input named ``file`` (a path)
     "delimiter": ",",           # one character
     "columns": ["age", "city"], # optional: profile only these
     "max_rows": 100000}         # optional: stop after this many rows

It returns ``{"rows": <count>, "columns": {name: profile}}`` where a profile is
``{"type": "number", "missing", "min", "max", "mean"}`` for a column whose non-empty values all
parse as numbers, else ``{"type": "text", "missing", "distinct"}``; reports the ``rows`` metric
and progress every 10,000 rows.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kaon.errors import Location, Problem, StepError
from kaon.steptypes.base import StepType
from kaon.steptypes.context import StepContext
from kaon_plugin_example.schema import check_config

PROGRESS_EVERY = 10_000


class ProfileConfig(BaseModel):
    """The config of a ``csv_profile`` step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str | None = None
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    columns: list[str] | None = None
    max_rows: int | None = Field(default=None, gt=0)

    @field_validator("columns")
    @classmethod
    def _columns_not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("give at least one column, or leave 'columns' out")
        return value


class _Column:
    """Running statistics of one column."""

    def __init__(self) -> None:
        self.missing = 0
        self.numbers: list[float] = []
        self.texts: set[str] = set()
        self.numeric = True

    def add(self, raw: str) -> None:
        value = raw.strip()
        if not value:
            self.missing += 1
            return
        self.texts.add(value)
        if self.numeric:
            try:
                self.numbers.append(float(value))
            except ValueError:
                self.numeric = False

    def profile(self) -> dict[str, Any]:
        if self.numeric and self.numbers:
            return {
                "type": "number",
                "missing": self.missing,
                "min": min(self.numbers),
                "max": max(self.numbers),
                "mean": sum(self.numbers) / len(self.numbers),
            }
        return {"type": "text", "missing": self.missing, "distinct": len(self.texts)}


class CsvProfileStepType(StepType):
    """Profiles a CSV file's columns (number or text, missing values, range or distinct)."""

    name: ClassVar[str] = "csv_profile"

    def validate(self, config: Mapping[str, Any], location: Location) -> list[Problem]:
        """Every problem :class:`ProfileConfig` finds, located at ``config.<field>``."""
        _, problems = check_config(ProfileConfig, config, location)
        return problems

    def run(self, ctx: StepContext, config: Mapping[str, Any], inputs: dict[str, Any]) -> Any:
        """Profile the file given by the ``file`` input or config.

        Raises :class:`~kaon.errors.StepError`: ``ConfigError`` when no file is given or a
        requested column is missing, ``CsvError`` when the file cannot be read or parsed.
        """
        settings = ProfileConfig.model_validate(dict(config))
        path = inputs.get("file") or settings.file
        if path is None:
            raise StepError("ConfigError", "give a 'file' input or a 'file' in the config")
        path = os.fspath(path)
        try:
            with open(path, newline="", encoding="utf-8") as handle:
                return self._profile(
                    ctx, csv.DictReader(handle, delimiter=settings.delimiter), settings, path
                )
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise StepError("CsvError", f"{path}: {exc}") from None

    @staticmethod
    def _profile(
        ctx: StepContext, reader: csv.DictReader[str], settings: ProfileConfig, path: str
    ) -> dict[str, Any]:
        header = reader.fieldnames or []
        wanted = settings.columns or list(header)
        unknown = [name for name in wanted if name not in header]
        if unknown:
            raise StepError("ConfigError", f"{path} has no column {', '.join(unknown)}")
        columns = {name: _Column() for name in wanted}
        rows = 0
        for row in reader:
            if settings.max_rows is not None and rows >= settings.max_rows:
                break
            rows += 1
            for name, column in columns.items():
                column.add(row.get(name) or "")
            if rows % PROGRESS_EVERY == 0:
                ctx.progress(None, f"{rows} rows profiled")
        ctx.metric("rows", rows)
        ctx.log(f"csv_profile: {rows} rows, {len(columns)} columns in {path}")
        return {"rows": rows, "columns": {name: c.profile() for name, c in columns.items()}}
