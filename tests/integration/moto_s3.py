"""A moto S3 server on loopback for the S3 artifact-store tests of this folder (one place for
what test_artifacts_s3.py and test_artifacts_s3_failures.py both start)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import moto.server as moto_server


def free_port() -> int:
    """A loopback port nothing listens on (closed again: free until someone binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def moto_endpoint() -> Iterator[str]:
    """Start a threaded moto S3 server on 127.0.0.1; yield its URL; stop it after."""
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
