"""The ``r`` step type: run an R script with ``Rscript``, talking back like a shell step.

Configuration, one of::

    {"file": "train_region.R"}                 # relative to the definition file's folder
    {"code": "kaon_output('n', nrow(mtcars))"} # inline R code

plus optionally ``args`` (a list of strings, seen by ``commandArgs(trailingOnly = TRUE)``),
``env`` (strings to strings), ``cwd`` (default: the script's folder; for inline ``code``,
``base_dir``, the definition file's folder, when the config carries it) and ``rscript`` (the
executable, default ``Rscript``). What a script reads by ``source("helper.R")`` (a literal
path, transitively) is part of its cache fingerprint (:mod:`kaon.steptypes._deps`).

The script runs through the :mod:`shell <kaon.steptypes.shell>` step machinery, so it sees the
same ``KAON_*`` environment variables (``KAON_PARAMS``, ``KAON_INPUT_<NAME>``,
``KAON_OUTPUT``...), its stdout and stderr lines become the step's log, the ``::kaon::``
line protocol and the ``$KAON_OUTPUT`` file set outputs, and it honours timeouts and
cancellation. On top of that, these base-R functions are defined before the script runs (from
``R_PROFILE_USER``; JSON goes through the ``jsonlite`` package, Debian ``r-cran-jsonlite``):

=============================== ===============================================================
``kaon_input(name, default)``   one input, with its JSON type (a data frame for a table input)
``kaon_inputs()``               every input as a named list
``kaon_params()``               the run's parameters as a named list
``kaon_output(name, value)``    set an output; a ``data.frame`` becomes a ``pandas.DataFrame``
``kaon_metric(name, value, step = NULL)`` report a metric
``kaon_progress(fraction, message = "")`` report progress
=============================== ===============================================================

Table inputs (``pandas.DataFrame``) travel to R as CSV files and come back the same way, so
column types are whatever ``read.csv``/``pandas.read_csv`` infer. A non-zero exit raises
:class:`~kaon.errors.StepError` of type ``RError`` with the last stderr lines (R's own
``Error: ...`` message among them).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from kaon.errors import Location, Problem, StepError
from kaon.steptypes._protocol import config_problems, resolve_file
from kaon.steptypes._values import json_default, plain_number
from kaon.steptypes.base import StepType
from kaon.steptypes.context import StepContext
from kaon.steptypes.scratch import scratch_folder
from kaon.steptypes.shell import ShellStepType

CSV_MARKER = "$kaon_csv"
_KNOWN_KEYS = frozenset({"file", "code", "base_dir", "args", "env", "cwd", "rscript"})

R_HELPERS = r"""
# Kaon's helpers for R steps (sourced through R_PROFILE_USER before the script runs).
.kaon_jsonlite <- function() {
  if (!requireNamespace("jsonlite", quietly = TRUE)) {
    stop("kaon: the R package 'jsonlite' is required (Debian: apt-get install r-cran-jsonlite)")
  }
}
.kaon_to_json <- function(value) {
  .kaon_jsonlite()
  as.character(jsonlite::toJSON(value, auto_unbox = TRUE, digits = NA, null = "null",
                                na = "null", dataframe = "rows"))
}
.kaon_decode <- function(value) {
  if (is.list(value) && identical(names(value), "$kaon_csv")) {
    return(utils::read.csv(value[[1]], stringsAsFactors = FALSE))
  }
  value
}
kaon_inputs <- function() {
  .kaon_jsonlite()
  path <- Sys.getenv("KAON_INPUTS_FILE")
  if (!nzchar(path)) return(list())
  lapply(jsonlite::fromJSON(path, simplifyVector = TRUE), .kaon_decode)
}
kaon_input <- function(name, default) {
  inputs <- kaon_inputs()
  if (!(name %in% names(inputs))) {
    if (missing(default)) stop(sprintf("kaon: no input named '%s'", name))
    return(default)
  }
  inputs[[name]]
}
kaon_params <- function() {
  .kaon_jsonlite()
  jsonlite::fromJSON(Sys.getenv("KAON_PARAMS", "{}"), simplifyVector = TRUE)
}
kaon_output <- function(name, value) {
  if (is.data.frame(value)) {
    path <- tempfile(pattern = paste0(name, "-"), tmpdir = Sys.getenv("KAON_TABLES_DIR"),
                     fileext = ".csv")
    utils::write.csv(value, path, row.names = FALSE)
    value <- list("$kaon_csv" = path)
  }
  cat("::kaon::output ", name, "=", .kaon_to_json(value), "\n", sep = "")
  invisible(value)
}
kaon_metric <- function(name, value, step = NULL) {
  suffix <- if (is.null(step)) "" else paste0(" ", as.integer(step))
  cat("::kaon::metric ", name, "=", format(as.numeric(value), digits = 17), suffix, "\n",
      sep = "")
  invisible(value)
}
kaon_progress <- function(fraction, message = "") {
  cat("::kaon::progress ", format(as.numeric(fraction), digits = 17), " ", message, "\n",
      sep = "")
  invisible(fraction)
}
"""


def _is_frame(value: Any) -> bool:
    kind = type(value)
    return kind.__module__.startswith("pandas") and kind.__name__ == "DataFrame"


def _inputs_for_r(inputs: Mapping[str, Any], tables_dir: str) -> tuple[dict[str, Any], str]:
    """``(inputs for the environment, JSON of every input for kaon_inputs())``.

    Data frames are written as CSV files and passed by path; paths become strings.
    """
    plain: dict[str, Any] = {}
    encoded: dict[str, Any] = {}
    for name, value in inputs.items():
        if _is_frame(value):
            path = os.path.join(tables_dir, f"input-{len(encoded)}.csv")
            value.to_csv(path, index=False)
            plain[name], encoded[name] = path, {CSV_MARKER: path}
        elif isinstance(value, Path):
            plain[name] = encoded[name] = str(value)
        else:
            plain[name] = encoded[name] = plain_number(value)
    return plain, json.dumps(encoded, default=json_default)


def _decode_outputs(value: Any) -> Any:
    """Outputs with ``{"$kaon_csv": path}`` markers read back as pandas DataFrames."""
    if not isinstance(value, dict):
        return value
    decoded: dict[str, Any] = {}
    for name, item in value.items():
        if isinstance(item, dict) and list(item) == [CSV_MARKER]:
            import pandas as pd

            decoded[name] = pd.read_csv(item[CSV_MARKER])
        else:
            decoded[name] = item
    return decoded


class RStepType(StepType):
    """Runs an R script with ``Rscript``; outputs come from ``kaon_output()`` and friends."""

    name: ClassVar[str] = "r"
    # ``kaon_params()`` reads $KAON_PARAMS (R_HELPERS): a script calling it reads the params.
    fact_readers: ClassVar[Mapping[bytes, str]] = {b"kaon_params": "params"}

    def validate(self, config: Mapping[str, Any], location: Location) -> list[Problem]:
        """Check: exactly one of ``file`` (an existing file) and ``code``; ``args`` a list of
        strings; ``env`` strings to strings; ``cwd``/``rscript`` strings."""
        location = location.with_field("config")  # problems point at config.<key>
        problems = config_problems(
            config,
            location,
            _KNOWN_KEYS,
            strings=("file", "code", "base_dir", "cwd", "rscript"),
            mappings=("env",),
            one_of=("file", "code"),
        )
        env = config.get("env")
        if isinstance(env, Mapping) and not all(isinstance(v, str) for v in env.values()):
            problems.append(Problem("'env' values must be strings", location.with_field("env")))
        args = config.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            problems.append(
                Problem("'args' must be a list of strings", location.with_field("args"))
            )
        if isinstance(config.get("file"), str) and config.get("code") is None:
            path = resolve_file(config, "file", location)
            if not os.path.isfile(path):
                problems.append(
                    Problem(f"R script {path} does not exist", location.with_field("file"))
                )
        return problems

    def run(self, ctx: StepContext, config: Mapping[str, Any], inputs: dict[str, Any]) -> Any:
        """Run the script; return the outputs it set (a dict) or None.

        Raises :class:`~kaon.errors.StepError`: ``RError`` on a non-zero exit, ``Timeout``,
        ``Cancelled``, or ``ConfigError`` when the script file is missing.
        """
        workdir = scratch_folder("r-")  # see kaon.steptypes.scratch
        try:
            return self._run(ctx, config, inputs, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _run(
        self, ctx: StepContext, config: Mapping[str, Any], inputs: dict[str, Any], workdir: str
    ) -> Any:
        helpers = os.path.join(workdir, "kaon-helpers.R")
        Path(helpers).write_text(R_HELPERS, encoding="utf-8")
        if config.get("code") is not None:
            script = os.path.join(workdir, "inline.R")
            Path(script).write_text(str(config["code"]), encoding="utf-8")
        else:
            script = resolve_file(config, "file")
            if not os.path.isfile(script):
                raise StepError("ConfigError", f"R script {script} does not exist")
        tables_dir = os.path.join(workdir, "tables")
        os.mkdir(tables_dir)
        plain_inputs, inputs_json = _inputs_for_r(inputs, tables_dir)
        inputs_file = os.path.join(workdir, "inputs.json")
        Path(inputs_file).write_text(inputs_json, encoding="utf-8")
        argv = [str(config.get("rscript") or "Rscript"), "--no-save", "--no-restore", script]
        argv += [str(a) for a in config.get("args") or []]
        # R's session folder (its tempdir(), Rtmp*) inside this attempt's folder, removed with
        # it: R removes it as it exits, so one killed (a timeout, a cancel) left one in /tmp.
        scratch = os.path.join(workdir, "tmp")
        os.mkdir(scratch)
        shell_config: dict[str, Any] = {
            "command": "exec " + shlex.join(argv),
            "env": {
                "TMPDIR": scratch,
                **{str(k): str(v) for k, v in (config.get("env") or {}).items()},
                "R_PROFILE_USER": helpers,
                "KAON_INPUTS_FILE": inputs_file,
                "KAON_TABLES_DIR": tables_dir,
            },
        }
        # The script's own folder, as a notebook runs in its own: `source("helper.R")` finds
        # the file beside it wherever `kaon run` was started.
        cwd = config.get("cwd") or (
            os.path.dirname(script) if config.get("code") is None else config.get("base_dir")
        )
        if cwd:
            shell_config["cwd"] = str(cwd)
        try:
            outputs = ShellStepType().run(ctx, shell_config, plain_inputs)
        except StepError as exc:
            if exc.error_type != "ShellError":
                raise
            message = exc.message.replace("command", "Rscript", 1)
            raise StepError("RError", message, exc.traceback) from None
        except FileNotFoundError as exc:  # a missing cwd
            raise StepError("ConfigError", f"cannot start Rscript: {exc}") from None
        return _decode_outputs(outputs)
