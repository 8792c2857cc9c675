"""The service layer: what the CLI calls today and the HTTP API will call, one set of typed
operations over the store, the engine and the artifact store.

``LocalService`` is imported on first use, so importing a light module of this package (the
settings, the client chooser) does not load the store and the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kaon.service.settings import Settings

if TYPE_CHECKING:
    from kaon.service.local import LocalService

__all__ = ["LocalService", "Settings"]


def __getattr__(name: str) -> Any:
    if name == "LocalService":
        from kaon.service.local import LocalService

        return LocalService
    raise AttributeError(f"module 'kaon.service' has no attribute {name!r}")
