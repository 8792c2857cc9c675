"""A run on a Kaon server, steered from Python: ``kaon.start(..., url=...)``.

The server's engine drives the run; every control is one call of its HTTP API (the same the
CLI makes with ``--url``), with the caller's token (``token=`` or ``KAON_TOKEN``)::

    handle = kaon.start("recsys", url="https://kaon.example", k=16)   # a registered workflow
    handle.wait(timeout=3600)
    handle.detail().steps
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kaon._waiting import WaitsForRun
from kaon.model.status import RunStatus
from kaon.service.remote import RemoteService
from kaon.service.views import LogView, RunDetail, StepRunView

_NO_VALUE: Any = object()  # skip() without a value


class RemoteRunHandle(WaitsForRun):
    """One run on a server: status, wait, kill, restart, skip, resume, logs, detail."""

    def __init__(self, service: RemoteService, run_id: str) -> None:
        self._service = service
        self.id = run_id

    def __repr__(self) -> str:
        return f"<kaon remote run {self.id} {self.status}>"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._service.close()

    @property
    def status(self) -> str:
        """The run's status on the server."""
        return self._service.get_run(self.id).status

    def _check_driver(self) -> None:
        return None  # the server's engine drives the run

    def detail(self, *, all_steps: bool = False) -> RunDetail:
        """The run with its steps (outputs as the API shows them) and metrics."""
        return self._service.run_detail(self.id, all_steps=all_steps)

    def paused(self) -> list[StepRunView]:
        """The steps held at breakpoints."""
        steps = self.detail(all_steps=True).steps
        return [s for s in steps if s.status == RunStatus.PAUSED.value]

    def logs(self, step: str) -> list[LogView]:
        """Log lines of one step (every attempt)."""
        return self._service.logs(self.id, step)

    def kill(self, *, step: str | None = None) -> str:
        """Cancel the run (or one step of it); returns the run's status."""
        return self._service.kill(self.id, step=step).status

    def skip(self, step: str, value: Any = _NO_VALUE) -> None:
        """Skip the step at ``step``; downstream steps see ``value`` when given."""
        has_output = value is not _NO_VALUE
        self._service.skip(
            self.id, step, output=value if has_output else None, has_output=has_output
        )

    def restart(self, from_step: str | None = None, *, force: bool = False) -> RemoteRunHandle:
        """Run a finished run again on the server (see :meth:`kaon.client.RunHandle.restart`)."""
        self._service.restart(self.id, from_step=from_step, force=force)
        return self

    def resume(self, *, step: str | None = None, params: Mapping[str, Any] | None = None) -> str:
        """Continue a paused run (one held step, changed params), or hand a run whose engine
        died to the server's engine. Returns the status."""
        if RunStatus(self.status) is RunStatus.PAUSED:
            return self._service.continue_run(self.id, step=step, params=params).status
        return self._service.resume_run(self.id).status
