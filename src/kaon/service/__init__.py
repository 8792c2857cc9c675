"""The service layer: what the CLI calls today and the HTTP API will call, one set of typed
operations over the store, the engine and the artifact store."""

from kaon.service.local import LocalService
from kaon.service.settings import Settings

__all__ = ["LocalService", "Settings"]
