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
