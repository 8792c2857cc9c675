"""A Ray cluster's address is checked before a run is recorded for it: a malformed one is a
setting error naming ``--ray-address``, an unreachable one too (``ray.init`` would wait for
it for ever, deaf to Ctrl-C)."""

from __future__ import annotations

import socket
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
