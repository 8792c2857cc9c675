"""Kaon from Python: load runs, their outputs, metrics and artifacts into a notebook.

::

    from kaon.client import Client

    c = Client()                                  # KAON_HOME / KAON_DB / KAON_ARTIFACTS
    run = c.run("20261126-1017")                  # an id or a unique prefix
    prep = run.outputs("prepare")                 # {"train": DataFrame, "segments": [...]}
    model = run.output("retrain[0].train_global")  # the "return" output
    run.metrics()                                 # a DataFrame (a list of dicts w/o pandas)
    c.artifact("62c69b8a").load()                 # any blob by hash or prefix

The client reads what runs recorded; it works through the same service layer as the CLI:
with ``url`` (or ``KAON_URL``) it reads a server's runs over HTTP with the same methods and
views (``token``, else ``KAON_TOKEN``; the server's groups and roles apply), and never opens
or creates a local store::

    c = Client(url="https://kaon.example.com", token="...")
    c.run("20261126-1017").output("train")        # the blob is streamed and verified

Every method raises :class:`~kaon.errors.NotFoundError` for an unknown or ambiguous run,
step or artifact, and :class:`~kaon.errors.CorruptArtifactError` rather than return a blob
whose content does not match its hash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kaon.model.values import RETURN, ArtifactRef
from kaon.service.client import KaonService, open_service
from kaon.service.experiment_views import (
    CompareView,
    ExplainView,
    FetchView,
    LineageView,
    PlotView,
    RunArtifactsView,
)
from kaon.service.settings import Settings
from kaon.service.views import RunView, StepRunView

__all__ = ["ArtifactHandle", "Client", "RunHandle"]


class Client:
    """Access to the runs recorded in a Kaon store, or on a Kaon server.

    ``home``, ``db`` and ``artifacts`` default like the CLI's options: ``KAON_HOME``
    (``./.kaon``), ``KAON_DB`` and ``KAON_ARTIFACTS``. With ``url`` (default: ``KAON_URL``)
    the client reads from that server instead, authenticated by ``token`` (default:
    ``KAON_TOKEN``). Close the client (or use it as a context manager) to release the
    database connection or the HTTP connections.
    """

    def __init__(
        self,
        home: str | Path | None = None,
        db: str | None = None,
        artifacts: str | None = None,
        *,
        url: str | None = None,
        token: str | None = None,
    ) -> None:
        settings = Settings.from_env(
            home=str(home) if home is not None else None, db_url=db, artifact_url=artifacts
        )
        self._service = open_service(url, settings, token=token)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the store's connections."""
        self._service.close()

    def runs(
        self, workflow: str | None = None, status: str | None = None, limit: int = 20
    ) -> list[RunView]:
        """Runs, newest first, optionally of one workflow and in one status."""
        return self._service.list_runs(workflow=workflow, status=status, limit=limit)

    def run(self, run_id: str) -> RunHandle:
        """The run with this id or unique id prefix."""
        return RunHandle(self._service, self._service.resolve_run_id(run_id))

    def artifact(self, hash_or_prefix: str) -> ArtifactHandle:
        """The recorded artifact with this sha256 or unique prefix."""
        experiments = self._service.experiments
        return ArtifactHandle(self._service, experiments.resolve_artifact(hash_or_prefix))

    def compare(self, *run_ids: str) -> CompareView:
        """Runs side by side: parameters, metrics, step statuses."""
        return self._service.experiments.compare(run_ids)

    def plot(
        self,
        *run_ids: str,
        metric: str,
        by: str | None = None,
        step: str | None = None,
        output: str | Path | None = None,
    ) -> PlotView:
        """The series of a metric plot, drawn as a PNG at ``output`` when given."""
        return self._service.experiments.plot(run_ids, metric, by=by, step=step, output=output)


class RunHandle:
    """One run: its status, parameters, steps, outputs and metrics (read when asked)."""

    def __init__(self, service: KaonService, run_id: str) -> None:
        self._service = service
        self.id = run_id

    def __repr__(self) -> str:
        return f"<kaon run {self.id} {self.status}>"

    @property
    def view(self) -> RunView:
        """The run's current summary."""
        return self._service.get_run(self.id)

    @property
    def status(self) -> str:
        """``pending``, ``running``, ``succeeded``, ``failed`` or ``cancelled``."""
        return self.view.status

    @property
    def params(self) -> dict[str, Any]:
        """The parameters the run was bound with."""
        return self.view.params

    @property
    def workflow(self) -> str:
        """The workflow's name."""
        return self.view.workflow

    @property
    def steps(self) -> list[StepRunView]:
        """Every step run (foreach items and loop iterations included), in creation order."""
        return self._service.run_detail(self.id, all_steps=True).steps

    def outputs(self, path: str) -> dict[str, Any]:
        """The loaded values of every output of the step at ``path``, by output name."""
        refs = self._service.experiments.step_outputs(self.id, path)
        return {name: self._service.artifacts.get(ref) for name, ref in refs.items()}

    def output(self, path: str, name: str = RETURN) -> Any:
        """The loaded value of one output of the step at ``path``."""
        ref = self._service.experiments.step_output_ref(self.id, path, name)
        return self._service.artifacts.get(ref)

    def artifacts(self) -> RunArtifactsView:
        """Every artifact the run produced or reused, and its inline values."""
        return self._service.experiments.run_artifacts(self.id)

    def explain(self, path: str) -> ExplainView:
        """Why the step at ``path`` was a cache hit or miss."""
        return self._service.experiments.explain(self.id, path)

    def metrics(self) -> Any:
        """Every metric value, one row each (``path, group, item_index, item, name, value,
        step, at, reused_from``): a pandas DataFrame when pandas is installed, else a list of
        dicts. A cached step's values are those of the execution it reused (``reused_from``).
        """
        rows = self._service.experiments.metrics(self.id)
        try:
            import pandas as pd
        except ImportError:
            return rows
        columns = [
            "path",
            "group",
            "item_index",
            "item",
            "name",
            "value",
            "step",
            "at",
            "reused_from",
        ]
        return pd.DataFrame(rows, columns=columns)


class ArtifactHandle:
    """One recorded blob: its lineage, its value, and a way to save it to a file."""

    def __init__(self, service: KaonService, hash_: str) -> None:
        self._service = service
        self.hash = hash_

    def __repr__(self) -> str:
        return f"<kaon artifact {self.hash[:12]}>"

    @property
    def ref(self) -> ArtifactRef:
        """The reference (serializer, size, type) under which it is stored."""
        return self._service.experiments.artifact_ref(self.hash)

    def load(self) -> Any:
        """The value, verified against its hash."""
        return self._service.artifacts.get(self.ref)

    def save(self, path: str | Path) -> FetchView:
        """Write the value to ``path`` (the format ``kaon get -o`` would choose)."""
        return self._service.experiments.fetch(self.hash, dest=path)

    def lineage(self, depth: int = 3) -> LineageView:
        """Where it came from and what used it."""
        return self._service.experiments.lineage(self.hash, depth=depth)
