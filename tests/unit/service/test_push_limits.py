"""The limits of the sandbox that evaluates a pushed file, from ``KAON_PUSH_TIMEOUT_S`` and
``KAON_PUSH_MEMORY_MB``: a value that is not a positive whole number is refused naming the
variable. ``abc`` or ``1.5`` was silently the default and ``0`` a limit every push failed."""

from __future__ import annotations

import pytest

from kaon.errors import ConfigurationError
from kaon.service.push_sandbox import SandboxLimits


def test_the_defaults_and_given_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAON_PUSH_TIMEOUT_S", raising=False)
    monkeypatch.delenv("KAON_PUSH_MEMORY_MB", raising=False)
    limits = SandboxLimits()
    assert (limits.timeout_s, limits.memory_bytes) == (60.0, 2048 << 20)
    monkeypatch.setenv("KAON_PUSH_TIMEOUT_S", " 90 ")
    monkeypatch.setenv("KAON_PUSH_MEMORY_MB", "512")
    limits = SandboxLimits()
    assert (limits.timeout_s, limits.memory_bytes) == (90.0, 512 << 20)


@pytest.mark.parametrize("name", ["KAON_PUSH_TIMEOUT_S", "KAON_PUSH_MEMORY_MB"])
@pytest.mark.parametrize("value", ["abc", "1.5", "0", "-3", "99999999999"])
def test_a_bad_value_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=f"^{name}={value!r}: expected a whole number"):
        SandboxLimits()
