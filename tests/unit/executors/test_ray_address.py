"""A Ray cluster's address is checked before a run is recorded for it: a malformed one is a
setting error naming ``--ray-address``, an unreachable one too (``ray.init`` would wait for
it for ever, deaf to Ctrl-C)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

from kaon.errors import ConfigurationError

ray_executor = pytest.importorskip("kaon.executors.ray_executor")


@pytest.mark.parametrize(
    ("address", "endpoint"),
    [
        ("127.0.0.1:6379", ("127.0.0.1", 6379)),
        ("ray://head.internal:10001", ("head.internal", 10001)),
        ("[::1]:6379", ("::1", 6379)),
        ("auto", None),
        (None, None),
    ],
)
def test_an_address_names_a_host_and_port(address: str | None, endpoint: object) -> None:
    assert ray_executor._endpoint(address) == endpoint


@pytest.mark.parametrize("address", ["nonsense", "http://x:1", "127.0.0.1:99999", "h:0", "h:"])
def test_a_malformed_address_names_the_setting(address: str) -> None:
    with pytest.raises(ConfigurationError, match=r"--ray-address / KAON_RAY_ADDRESS: .* is not"):
        ray_executor.RayExecutor(address=address)


def test_an_unreachable_address_is_refused_at_once() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    executor = ray_executor.RayExecutor(address=f"127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match=r"nothing answers at 127\.0\.0\.1"):
        executor.warm()
    assert time.monotonic() - started < 6


@pytest.mark.parametrize(
    "reply", [b"HTTP/1.0 400 Bad Request\r\n\r\n", b""], ids=["http", "silent"]
)
def test_an_address_that_answers_but_is_no_ray_head_is_refused(
    monkeypatch: pytest.MonkeyPatch, reply: bytes
) -> None:
    """A port that accepts connections but is not a head's GCS (the dashboard's 8265, another
    server) passed the connection check, then ``ray.init`` waited for ever, the run left
    ``pending``: Ray's handshake is now awaited for a bounded time."""
    monkeypatch.setattr(ray_executor, "GCS_CHECK_S", 2.0, raising=False)
    stop = threading.Event()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.2)
        port = server.getsockname()[1]

        def serve() -> None:
            held = []
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                held.append(conn)
                if reply:
                    with contextlib.suppress(OSError):
                        conn.sendall(reply)
            for conn in held:
                conn.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            executor = ray_executor.RayExecutor(address=f"127.0.0.1:{port}")
            with pytest.raises(ConfigurationError, match=r"127\.0\.0\.1:\d+, but not a Ray"):
                executor.warm()
        finally:
            stop.set()
            thread.join(timeout=5)


def test_a_missing_token_file_is_refused_before_a_run_is_recorded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """``KAON_RAY_TOKEN_FILE`` naming no file was read only when the executor started,
    after ``kaon run`` had recorded the run (left ``pending``)."""
    monkeypatch.delenv("KAON_RAY_TOKEN", raising=False)
    monkeypatch.setenv("KAON_RAY_TOKEN_FILE", f"{tmp_path}/no-such-token")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        executor = ray_executor.RayExecutor(address=f"127.0.0.1:{server.getsockname()[1]}")
        with pytest.raises(ConfigurationError, match=r"KAON_RAY_TOKEN_FILE=.*no-such-token"):
            executor.warm()


def test_an_unschedulable_amount_of_memory_reads_in_gib() -> None:
    assert ray_executor._amount("memory", 5.36870912e11) == "500 GiB"
    assert ray_executor._amount("memory", 64 * 1024**2) == "64 MiB"
    assert ray_executor._amount("GPU", 2.0) == "2"


def test_a_ray_address_with_another_executor_is_refused(tmp_path: object) -> None:
    """``--ray-address`` with ``-e process`` was silently ignored (the run ran locally)."""
    from kaon.service.settings import Settings

    with pytest.raises(ConfigurationError, match="--ray-address applies to the ray executor"):
        Settings.from_env(home=str(tmp_path), executor="process", ray_address="127.0.0.1:6379")
    ray_settings = Settings.from_env(home=str(tmp_path), executor="ray", ray_address="h:1")
    assert ray_settings.ray_address == "h:1"
