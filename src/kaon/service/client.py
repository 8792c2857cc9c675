"""One client interface, local or remote: :func:`open_service` picks by ``--url``/``KAON_URL``.

:class:`KaonService` is what the CLI's run commands need (``LocalService`` and
``RemoteService`` both satisfy it); :class:`LocalRegistry` gives the registry operations of
``RemoteService`` over a local store, acting as the local admin.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from kaon.service.limits import MAX_LIST_PAGE
from kaon.service.settings import Settings

# The local service (store, engine) and the remote one (httpx) are imported by the function
# that opens them: `kaon run` never loads the HTTP client, `kaon run --url` never the engine.
if TYPE_CHECKING:
    from kaon.artifacts.base import ArtifactStore
    from kaon.model.cache_policy import CachePolicy
    from kaon.model.specs import WorkflowSpec
    from kaon.model.status import RunStatus
    from kaon.model.values import ArtifactRef, ValueRef
    from kaon.service.experiment_views import (
        CompareView,
        ExplainView,
        FetchView,
        LineageView,
        PlotView,
        RunArtifactsView,
    )
    from kaon.service.pools import PermitRequest, PermitView, PoolAdmin, PoolRequest, PoolView
    from kaon.service.registry_views import (
        AuditView,
        PushResult,
        SignalView,
        TokenView,
        VersionView,
        WorkflowView,
    )
    from kaon.service.remote import Listener, RemoteService, Stoppable
    from kaon.service.run_reads import LogWindowView, RunPage, StepDetail
    from kaon.service.views import LogView, PausedStepView, RunDetail, RunView


class ExperimentReads(Protocol):
    """What the read commands and :class:`kaon.client.Client` ask of recorded runs, local
    (:class:`~kaon.service.experiments.Experiments`) or remote
    (:class:`~kaon.service.remote_reads.RemoteExperiments`); the same views either way."""

    def resolve_run(self, given: str) -> str: ...

    def resolve_artifact(self, given: str) -> str: ...

    def artifact_ref(self, hash_: str) -> ArtifactRef: ...

    def run_artifacts(
        self, run: str, *, offset: int = ..., limit: int | None = ...
    ) -> RunArtifactsView: ...

    def lineage(self, artifact: str, *, depth: int = 3) -> LineageView: ...

    def step_outputs(self, run: str, path: str) -> dict[str, ValueRef]: ...

    def step_output_ref(self, run: str, path: str, output: str | None = None) -> ValueRef: ...

    def fetch(
        self,
        target: str,
        step: str | None = None,
        *,
        output: str | None = None,
        dest: str | Path | None = None,
    ) -> FetchView: ...

    def explain(self, run: str, path: str) -> ExplainView: ...

    def compare(self, runs: Sequence[str], *, limit: int = ...) -> CompareView: ...

    def metrics(self, run: str) -> list[dict[str, Any]]: ...

    def plot(
        self,
        runs: Sequence[str],
        metric: str,
        *,
        by: str | None = None,
        step: str | None = None,
        output: str | Path | None = None,
    ) -> PlotView: ...


class KaonService(Protocol):
    """The operations the CLI's run and read commands use, local or remote."""

    @property
    def experiments(self) -> ExperimentReads: ...

    @property
    def artifacts(self) -> ArtifactStore: ...

    def close(self) -> None: ...

    def __enter__(self) -> KaonService: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None: ...

    def validate(self, target: str) -> WorkflowSpec: ...

    def create_run(
        self,
        spec: WorkflowSpec,
        params: Mapping[str, Any],
        *,
        from_strings: bool = False,
        source: str = "",
        cache: CachePolicy | None = None,
        breakpoints: Sequence[str] = (),
        priority: int | None = None,
    ) -> RunView: ...

    def prepare_execution(self) -> None: ...

    def execute(
        self,
        run_id: str,
        *,
        listener: Listener | None = None,
        on_engine: Callable[[Stoppable], None] | None = None,
        after_event: int = 0,
    ) -> RunStatus: ...

    def follow(
        self,
        run_id: str,
        *,
        listener: Listener | None = None,
        on_engine: Callable[[Stoppable], None] | None = None,
        after_event: int = 0,
        on_unheld: Callable[[str], None] | None = None,
    ) -> RunStatus: ...

    def last_event_id(self, run_id: str) -> int: ...

    def last_log_id(self, run_id: str) -> int: ...

    def log_window(
        self, run_id: str, path: str | None = None, *, after_id: int = 0
    ) -> LogWindowView: ...

    def restart(
        self,
        run_id: str,
        *,
        from_step: str | None = None,
        by: str = "",
        force: bool = False,
        only: bool = False,
    ) -> RunView: ...

    def skip(
        self, run_id: str, path: str, *, output: Any = None, has_output: bool = False, by: str = ""
    ) -> str: ...

    def delete_run(self, run_id: str, *, by: str = "", by_token: str | None = None) -> None: ...

    def kill(
        self, run_id: str, *, step: str | None = None, by: str = "", wait_s: float = 10.0
    ) -> RunView: ...

    def continue_run(
        self,
        run_id: str,
        *,
        step: str | None = None,
        params: Mapping[str, Any] | None = None,
        from_strings: bool = False,
        by: str = "",
    ) -> RunView: ...

    def paused_views(self, run_id: str) -> list[PausedStepView]: ...

    def resolve_run_id(self, given: str) -> str: ...

    def get_run(self, run_id: str) -> RunView: ...

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> list[RunView]: ...

    def run_detail(self, run_id: str, *, all_steps: bool = False) -> RunDetail: ...

    def logs(self, run_id: str, path: str, *, attempt: int | None = None) -> list[LogView]: ...

    def run_page(
        self,
        run_id: str,
        *,
        all_steps: bool = False,
        limit: int = 1000,
        offset: int = 0,
        metrics_limit: int = 1000,
        statuses: tuple[str, ...] = (),
        kind: str | None = None,
        sort: str = "index",
        descending: bool = False,
    ) -> RunPage: ...

    def step_detail(self, run_id: str, path: str) -> StepDetail: ...


def server_url(url: str | None = None) -> str | None:
    """The server URL in force: ``url``, else ``KAON_URL``, else the project's configuration
    (its chosen profile first, see :mod:`kaon.service.project`), else None (work locally).
    An empty ``url`` (``--url ""``) means locally whatever ``KAON_URL`` or the project says:
    one command on the local store without unsetting them."""
    if url is not None:
        return url.strip() or None
    if os.environ.get("KAON_URL"):
        return os.environ.get("KAON_URL")
    from kaon.service.project import resolve

    found = resolve()["url"].value
    return str(found) if found else None


def choose_server(url: str | None, local_options: Mapping[str, object] | None = None) -> str | None:
    """The server URL in force (see :func:`server_url`), or None to work locally.

    ``local_options`` maps a command's options that choose the local store or executor
    (``--db``, ``--home``, ``--executor``...) to the values given on its command line (None:
    not given). A server uses its own store and workers, so naming both is a conflict: raises
    ConfigurationError naming the options and where the URL came from, rather than dropping
    the options without a word (``kaon runs --db ci.db`` with KAON_URL set listed the
    server's runs)."""
    found = server_url(url)
    given = [name for name, value in (local_options or {}).items() if value is not None]
    if found and given:
        from kaon.errors import ConfigurationError

        if url:
            source, unset = "--url", "drop --url"
        elif os.environ.get("KAON_URL"):
            source, unset = "KAON_URL", "give --url '' (or unset KAON_URL)"
        else:
            source, unset = "the project's url", "give --url '' (or use a profile without a url)"
        raise ConfigurationError(
            f"{', '.join(given)} {'chooses' if len(given) == 1 else 'choose'} the local store "
            f"or executor, but {source} points this command at the server {found}, which uses "
            f"its own: drop {', '.join(given)} to work with the server, or {unset} to work locally"
        )
    return found


def open_service(
    url: str | None = None,
    settings: Settings | None = None,
    *,
    token: str | None = None,
    local_options: Mapping[str, object] | None = None,
) -> KaonService:
    """A :class:`RemoteService` when a server URL is given or set (with ``token``, else
    ``KAON_TOKEN``), else a LocalService. ``local_options`` given with a server URL raise
    ConfigurationError (see :func:`choose_server`)."""
    found = choose_server(url, local_options)
    if found:
        from kaon.service.remote import RemoteService

        return RemoteService(found, token=token)
    from kaon.service.local import LocalService

    return LocalService(settings or Settings.from_env())


class LocalRegistry:
    """The registry operations of :class:`RemoteService` over a local store (as admin)."""

    def __init__(self, settings: Settings) -> None:
        from kaon.api.app import build_services
        from kaon.service.auth import LOCAL_PRINCIPAL

        self.services = build_services(settings)
        self.principal = LOCAL_PRINCIPAL

    def close(self) -> None:
        """Close the store."""
        self.services.runs.close()

    def __enter__(self) -> LocalRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def push(
        self, target: str, *, activate: bool = True, owner_group: str | None = None
    ) -> PushResult:
        """Register ``FILE[:WORKFLOW]`` as a new version (no-op if unchanged)."""
        from kaon.dsl.loader import split_target
        from kaon.service.bundle import read_push

        file, name = split_target(target)
        source, files = read_push(file)
        return self.services.registry.push(
            source,
            os.path.basename(file),
            self.principal,
            workflow=name,
            activate=activate,
            owner_group=owner_group,
            files=files,
        )

    def workflows(self) -> list[WorkflowView]:
        """Every registered workflow, by name, read a page at a time (the first 100 only,
        before)."""
        found: list[WorkflowView] = []
        while True:
            after = found[-1].name if found else None
            page = self.services.registry.workflows(limit=MAX_LIST_PAGE, after=after)
            found.extend(page)
            if len(page) < MAX_LIST_PAGE:
                return found

    def workflow(self, name: str) -> WorkflowView:
        """One workflow."""
        return self.services.registry.workflow(name)

    def versions(self, name: str) -> list[VersionView]:
        """Every version of a workflow."""
        return self.services.registry.versions(name)

    def activate(self, name: str, version: int) -> WorkflowView:
        """Make ``version`` active."""
        return self.services.registry.activate(name, version, self.principal)

    def deactivate(self, name: str) -> WorkflowView:
        """Deactivate the workflow."""
        return self.services.registry.deactivate(name, self.principal)

    def update_workflow(
        self, name: str, properties: Mapping[str, Any], owner_group: str | None = None
    ) -> WorkflowView:
        """Merge properties; optionally change the owner group."""
        return self.services.registry.update(
            name, self.principal, properties=properties, owner_group=owner_group
        )

    def create_token(
        self, name: str, role: str, groups: list[str], expires_in: float | None = None
    ) -> TokenView:
        """Create an API token in the local store; the result holds the secret."""
        from kaon.service.registry_views import token_view

        record, secret = self.services.auth.create_token(
            name, role, groups, by="local", expires_in=expires_in
        )
        return token_view(record, secret)

    def list_tokens(self) -> list[TokenView]:
        """Every token (never the secrets)."""
        from kaon.service.registry_views import token_view

        return [token_view(t) for t in self.services.auth.registry.list_tokens()]

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token. Raises NotFoundError."""
        self.services.auth.revoke(token_id, by="local")

    def audit(
        self,
        *,
        target: str | None = None,
        actor: str | None = None,
        token_id: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[AuditView]:
        """The audit trail, oldest first: entries with ids above ``after``, optionally of
        one target, one actor (a token's name) and one token (its id)."""
        from kaon.service.registry_views import audit_view

        records = self.services.auth.registry.audit(
            target=target, actor=actor, token_id=token_id, after_id=after, limit=limit
        )
        return [audit_view(r) for r in records]

    def rotate_token(self, token_id: str, expires_in: float | None = None) -> TokenView:
        """A new secret for a token (the old one stops working); the result holds it."""
        from kaon.service.registry_views import token_view

        record, secret = self.services.auth.rotate(token_id, by="local", expires_in=expires_in)
        return token_view(record, secret)

    def _pool_admin(self) -> PoolAdmin:
        from kaon.service.pools import PoolAdmin

        return PoolAdmin(self.services.store, self.services.auth)

    def pools(self) -> list[PoolView]:
        """Every pool with what is used now."""
        return self._pool_admin().pools()

    def set_pool(self, name: str, request: PoolRequest) -> PoolView:
        """Create or change a pool."""
        return self._pool_admin().set_pool(name, request, self.principal)

    def delete_pool(self, name: str) -> None:
        """Delete a pool. Raises NotFoundError."""
        self._pool_admin().delete_pool(name, self.principal)

    def permits(self) -> list[PermitView]:
        """Every tag permit with what is used now."""
        return self._pool_admin().permits()

    def set_permit(self, tag: str, request: PermitRequest) -> PermitView:
        """Create or change a tag permit."""
        return self._pool_admin().set_permit(tag, request, self.principal)

    def delete_permit(self, tag: str) -> None:
        """Delete a tag permit. Raises NotFoundError."""
        self._pool_admin().delete_permit(tag, self.principal)

    def send_signal(self, name: str, params: Mapping[str, Any]) -> SignalView:
        """Store a signal in the local store."""
        from kaon.service.registry_views import signal_view

        return signal_view(self.services.registry.send_signal(name, params, self.principal))


def open_registry(
    url: str | None, settings: Settings, *, local_options: Mapping[str, object] | None = None
) -> RemoteService | LocalRegistry:
    """The registry client: remote when a server URL is given or set, else local
    (``local_options`` as :func:`open_service` takes them)."""
    found = choose_server(url, local_options)
    if found:
        from kaon.service.remote import RemoteService

        return RemoteService(found)
    return LocalRegistry(settings)
