"""The r step type against the real Rscript (Debian r-base-core with r-cran-jsonlite)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kaon.errors import Location, StepError
from kaon.model.events import ExecutorEvent, LogLine, MetricReported, ProgressReported
from kaon.steptypes.context import StepContext
from kaon.steptypes.registry import get_step_type
from kaon.steptypes.rscript import RStepType

# `make test` installs R when missing: without it these tests fail, never skip.
pytestmark = pytest.mark.usefixtures("rscript_installed")


@pytest.fixture(scope="module")
def rscript_installed() -> None:
    if shutil.which("Rscript") is None:
        pytest.fail("Rscript is required (make test installs r-base-core r-cran-jsonlite)")


DATA = Path(__file__).parent / "data"
HERE = Location("flow.yaml", 9, "steps.fit")


class Harness:
    def __init__(self, **extra: Any) -> None:
        self.events: list[ExecutorEvent] = []
        self.ctx = StepContext(
            ("run-1", 1, 1), "fit", "wf", {"scale": 2.5}, self.events.append, extra=extra
        )

    def run(self, inputs: dict[str, Any] | None = None, **config: Any) -> Any:
        return RStepType().run(self.ctx, config, inputs or {})

    def logs(self) -> list[tuple[str, str]]:
        return [(e.stream, e.text) for e in self.events if isinstance(e, LogLine)]


def test_registered_as_r() -> None:
    assert isinstance(get_step_type("r"), RStepType)


def test_script_file_gets_inputs_params_and_reports_outputs_and_metrics() -> None:
    data = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [2.1, 3.9, 6.2, 7.8]})
    harness = Harness()
    outputs = harness.run(
        {"data": data, "region": "emea"},
        file="region_model.R",
        base_dir=str(DATA),
        args=["--fast"],
    )
    model = outputs["model"]
    assert model["region"] == "emea"
    assert model["scale"] == 2.5
    assert model["args"] == "--fast"
    assert model["slope"] == pytest.approx(1.94, abs=1e-9)
    residuals = outputs["residuals"]
    assert isinstance(residuals, pd.DataFrame)
    assert list(residuals.columns) == ["x", "residual"]
    assert residuals["residual"].sum() == pytest.approx(0.0, abs=1e-9)
    metrics = {e.name: (e.value, e.step) for e in harness.events if isinstance(e, MetricReported)}
    assert metrics["rows"] == (4.0, 1)
    assert 0.99 < metrics["r_squared"][0] <= 1.0
    progress = [(e.fraction, e.message) for e in harness.events if isinstance(e, ProgressReported)]
    assert progress == [(0.5, "fitted")]
    assert ("stdout", "fitted emea ") in harness.logs()
    assert ("stderr", "a note on stderr") in harness.logs()


def test_inline_code_and_typed_inputs() -> None:
    code = (
        "x <- kaon_input('xs'); kaon_output('total', sum(x));"
        "kaon_output('missing', kaon_input('nope', default = 'fallback'));"
        "kaon_output('n', nchar(Sys.getenv('KAON_INPUT_WORD')))"
    )
    outputs = Harness().run({"xs": [1, 2, 3.5], "word": "kaon"}, code=code)
    assert outputs == {"total": 6.5, "missing": "fallback", "n": 4}


def test_kaon_output_file_works_as_for_shell_steps() -> None:
    code = "writeLines('{\"answer\": 42}', Sys.getenv('KAON_OUTPUT'))"
    assert Harness().run(code=code) == {"answer": 42}


def test_script_without_outputs_returns_none() -> None:
    assert Harness().run(code="invisible(1 + 1)") is None


def test_r_error_fails_the_step_with_r_message() -> None:
    with pytest.raises(StepError) as info:
        Harness().run(code="cat('working\\n'); stop('the model did not converge')")
    assert info.value.error_type == "RError"
    assert info.value.message.startswith("Rscript exited with status 1")
    assert "Error: the model did not converge" in info.value.message


def test_quit_status_is_reported() -> None:
    with pytest.raises(StepError) as info:
        Harness().run(code="quit(status = 3)")
    assert info.value.error_type == "RError"
    assert "status 3" in info.value.message


def test_timeout_stops_the_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """And leaves no R session folder behind (R removes its ``Rtmp*`` as it exits: a killed
    one left it in the temporary folder, one per timed-out or cancelled attempt)."""
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(StepError) as info:
        Harness(timeout_s=2.0).run(code="writeLines(tempdir()); Sys.sleep(30)")
    assert info.value.error_type == "Timeout"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "config.file"),
        ({"file": "a.R", "code": "1"}, "config.file"),
        ({"code": "1", "args": "x"}, "config.args"),
        ({"code": "1", "env": {"A": 1}}, "config.env"),
        ({"code": "1", "script": "x"}, "config.script"),
        ({"file": "missing.R", "base_dir": str(DATA)}, "config.file"),
    ],
)
def test_config_problems_name_the_field(config: dict[str, Any], field: str) -> None:
    problems = RStepType().validate(config, HERE)
    assert [p.location.field for p in problems] == [f"steps.fit.{field}"]


def test_valid_config_has_no_problems() -> None:
    config = {"file": "region_model.R", "base_dir": str(DATA), "args": ["a"], "env": {"A": "b"}}
    assert RStepType().validate(config, HERE) == []


def test_a_script_runs_in_its_own_folder_wherever_kaon_was_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``source("helper.R")`` failed (``cannot open file 'helper.R'``) unless ``kaon run``
    was started in the script's folder: the YAML and Python front ends give an absolute
    ``file`` and no ``base_dir``, and the script ran in the process's folder."""
    pipe = tmp_path / "pipe"
    pipe.mkdir()
    (pipe / "helper.R").write_text("K <- 10\n")
    (pipe / "main.R").write_text('source("helper.R"); kaon_output("k", K)\n')
    monkeypatch.chdir(tmp_path)
    assert Harness().run(file=str(pipe / "main.R")) == {"k": 10}
    own = Harness().run(code="kaon_output('cwd', getwd())", base_dir=str(pipe))
    assert own == {"cwd": str(pipe)}  # inline code: the definition's folder
