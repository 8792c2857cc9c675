"""Experiment reads over HTTP: what :class:`~kaon.service.experiments.Experiments` answers
locally, asked of a ``kaon server`` (``kaon artifacts``, ``lineage``, ``get``, ``explain``,
``compare``, ``plot`` and :class:`kaon.client.Client` with a URL).

:class:`RemoteExperiments` has the read methods of ``Experiments`` with the same names and
views (the :class:`~kaon.service.client.ExperimentReads` protocol); values are loaded through
:class:`HttpArtifactStore`, which streams a blob from ``GET /artifacts/{hash}/blob``,
resumes a broken transfer with a Range read, and verifies the bytes against the hash before
decoding them. Nothing here opens or creates a local store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from kaon.artifacts.base import ArtifactStore
from kaon.artifacts.serializers import decode_blob
from kaon.errors import (
    ArtifactError,
    CorruptArtifactError,
    NotFoundError,
)
from kaon.model.values import (
    ArtifactRef,
    Literal,
    RefDict,
    RefList,
    ValueRef,
    decode_outputs,
)
from kaon.service.experiment_views import (
    CompareView,
    ExplainView,
    FetchView,
    LineageView,
    PlotView,
    RunArtifactsView,
)
from kaon.service.experiments import fetch_value, pick_output, require_rows, require_two
from kaon.service.limits import ARTIFACTS_PAGE, COMPARE_ROWS
from kaon.service.remote import segment

if TYPE_CHECKING:
    from kaon.service.remote import RemoteService

RETRIES = 3  # resumed reads of one blob after a broken transfer


class HttpArtifactStore(ArtifactStore):
    """A read-only artifact store: the server's blobs, fetched over its API."""

    def __init__(self, remote: RemoteService) -> None:
        self.url = f"{remote.url}/artifacts"
        self._remote = remote

    def __repr__(self) -> str:
        return f"HttpArtifactStore({self.url!r})"

    def put(self, value: Any, *, name: str = "") -> ValueRef:
        """Refused: a client reads a server's artifacts; steps write them."""
        raise ArtifactError(f"the artifact store at {self.url} is read-only from a client")

    def get(self, ref: ValueRef) -> Any:
        """The value behind ``ref`` (lists and dicts of references resolve recursively).

        Raises CorruptArtifactError when the bytes do not match the hash, NotFoundError for a
        blob the caller may not read, ArtifactError when the transfer fails.
        """
        if isinstance(ref, Literal):
            return ref.value
        if isinstance(ref, RefList):
            return [self.get(item) for item in ref.items]
        if isinstance(ref, RefDict):
            return {key: self.get(item) for key, item in ref.items.items()}
        if not isinstance(ref, ArtifactRef):
            raise ArtifactError(f"not a value reference: {type(ref).__name__}")
        return decode_blob(ref.hash, ref.serializer, self.read_bytes(ref.hash))

    def exists(self, ref: ArtifactRef) -> bool:
        """True when the server has (and shows the caller) the blob behind ``ref``."""
        try:
            self._remote._call("GET", f"/artifacts/{segment(ref.hash, 'artifact')}")
        except NotFoundError:
            return False
        return True

    def read_bytes(self, hash_: str) -> bytes:
        """The blob's bytes, verified against ``hash_``; a broken transfer is resumed from
        the bytes received (``Range: bytes=N-``) up to :data:`RETRIES` times."""
        data = bytearray()
        failures = 0
        while True:
            try:
                self._receive(hash_, data)
                break
            except httpx.TransportError as exc:
                failures += 1
                if failures > RETRIES:
                    raise ArtifactError(
                        f"cannot fetch blob {hash_} from {self.url}: {exc}"
                    ) from exc
        actual = hashlib.sha256(data).hexdigest()  # over the buffer itself: no copy
        if actual != hash_:
            raise CorruptArtifactError(
                f"blob {hash_} from {self.url} is corrupt: its content hashes to {actual}"
            )
        return bytes(data)

    def _receive(self, hash_: str, data: bytearray) -> None:
        """Append the rest of the blob to ``data`` (all of it when the server ignores the
        range)."""
        from kaon.service.remote import raise_for_answer

        headers = {"Range": f"bytes={len(data)}-"} if data else {}
        path = f"/artifacts/{segment(hash_, 'artifact')}/blob"
        with self._remote.http.stream("GET", path, headers=headers) as response:
            if response.status_code == 416:  # nothing left: ``data`` is the whole blob
                return
            if not response.is_success:
                response.read()
                raise_for_answer(response)
            if response.status_code != 206:
                data.clear()
            for piece in response.iter_bytes():  # as received: a break keeps what came
                data.extend(piece)


class RemoteExperiments:
    """The read operations of :class:`~kaon.service.experiments.Experiments` over HTTP."""

    def __init__(self, remote: RemoteService) -> None:
        self._remote = remote
        self.artifacts = HttpArtifactStore(remote)

    def _get(self, route: str, **params: Any) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        return self._remote._call("GET", route, params=query)

    def resolve_run(self, given: str) -> str:
        """The full id of the run named by ``given`` or a unique prefix of it."""
        return self._remote.resolve_run_id(given)

    def resolve_artifact(self, given: str) -> str:
        """The full sha256 of the recorded artifact named by ``given`` or a unique prefix."""
        return str(self._get(f"/artifacts/{segment(given, 'artifact')}")["hash"])

    def artifact_ref(self, hash_: str) -> ArtifactRef:
        """The reference (serializer, size, type) of a recorded blob."""
        found = self._get(f"/artifacts/{segment(hash_, 'artifact')}")
        return ArtifactRef(found["hash"], found["serializer"], int(found["size"]), found["type"])

    def run_artifacts(
        self, run: str, *, offset: int = 0, limit: int | None = None
    ) -> RunArtifactsView:
        """The blobs a run's steps produced or reused, and their inline values: of one page
        of ``limit`` step runs from ``offset``, or (``limit`` None) of every step run, the
        server's pages followed to the last."""
        route = f"/runs/{segment(run, 'run')}/artifacts"
        view = RunArtifactsView.model_validate(
            self._get(route, offset=offset, limit=limit or ARTIFACTS_PAGE)
        )
        # ``next_offset`` is what the Kaon-Next header says (an older server: only it).
        while limit is None and view.next_offset is not None:
            more = RunArtifactsView.model_validate(
                self._get(route, offset=view.next_offset, limit=ARTIFACTS_PAGE)
            )
            view.artifacts.extend(more.artifacts)
            view.values.extend(more.values)
            view.next_offset = more.next_offset
        return view

    def lineage(self, artifact: str, *, depth: int = 3) -> LineageView:
        """Where a blob came from (``depth`` levels of inputs) and what used it."""
        return LineageView.model_validate(
            self._get(f"/artifacts/{segment(artifact, 'artifact')}/lineage", depth=depth)
        )

    def load(self, artifact: str) -> Any:
        """The value of a recorded blob, verified against its hash."""
        return self.artifacts.get(self.artifact_ref(self.resolve_artifact(artifact)))

    def step_outputs(self, run: str, path: str) -> dict[str, ValueRef]:
        """The output references of the step run at ``path`` (empty when it has none)."""
        return decode_outputs(
            self._get(f"/runs/{segment(run, 'run')}/outputs", path=path)["outputs"]
        )

    def step_output_ref(self, run: str, path: str, output: str | None = None) -> ValueRef:
        """One output of a step run, or (``output`` None) its value as ``steps.X`` sees it."""
        return pick_output(self.step_outputs(run, path), f"step {path} of run {run}", output)

    def fetch(
        self,
        target: str,
        step: str | None = None,
        *,
        output: str | None = None,
        dest: str | Path | None = None,
    ) -> FetchView:
        """As :meth:`Experiments.fetch`: a blob or a step's output, written to ``dest`` here
        or described with a preview."""
        return fetch_value(self, target, step, output, dest)

    def explain(self, run: str, path: str) -> ExplainView:
        """Why the step at ``path`` was a cache hit or miss."""
        return ExplainView.model_validate(
            self._get(f"/runs/{segment(run, 'run')}/explain", path=path)
        )

    def compare(self, runs: Sequence[str], *, limit: int = COMPARE_ROWS) -> CompareView:
        """Parameters, metrics and step statuses of several runs side by side."""
        require_two(runs)  # refused here as by the server and locally, in their words
        require_rows(limit)
        return CompareView.model_validate(self._get("/compare", run=list(runs), limit=limit))

    def metrics(self, run: str) -> list[dict[str, Any]]:
        """Every metric value of a run as flat rows: the server answers a page at a time,
        so this follows the pages (the ``Kaon-Next`` cursor) to the last."""
        route = f"/runs/{segment(run, 'run')}/metric-rows"
        rows: list[dict[str, Any]] = []
        params: dict[str, Any] = {}
        while True:
            response = self._remote._answer("GET", route, params=params)
            rows += response.json()["rows"]
            following = response.headers.get("Kaon-Next")
            if following is None:
                return rows
            params["after"] = following

    def plot(
        self,
        runs: Sequence[str],
        metric: str,
        *,
        by: str | None = None,
        step: str | None = None,
        output: str | Path | None = None,
    ) -> PlotView:
        """The server computes the series; the PNG is drawn here at ``output`` when given."""
        from kaon.service import _export

        found = self._get("/plot", run=list(runs), metric=metric, by=by, step=step)
        view = PlotView.model_validate(found)
        if output is not None:
            _export.render_plot(view, Path(output))
            view.output = str(Path(output).absolute())
        return view
