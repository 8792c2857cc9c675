"""Run tokens: signed, expiring, and good for their own run only."""

from __future__ import annotations

import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaon.errors import AuthenticationError, PermissionDeniedError
from kaon.service.auth import AuthService
from kaon.service.run_tokens import RunTokenError, RunTokens
from kaon.store.registry import SQLRegistryStore
from kaon.store.sql import SQLStore


@pytest.fixture
def tokens(tmp_path: Path) -> RunTokens:
    return RunTokens.for_home(tmp_path, ttl_s=60)


@pytest.fixture
def auth(tokens: RunTokens) -> Iterator[AuthService]:
    store = SQLStore("sqlite://")
    try:
        yield AuthService(SQLRegistryStore(store), cache_s=0.0, run_tokens=tokens)
    finally:
        store.close()


def test_key_is_kept_private_in_the_home(tmp_path: Path, tokens: RunTokens) -> None:
    key = tmp_path / "run-token.key"
    assert not key.exists()  # created when first needed: opening services writes nothing
    first = tokens.mint("r1")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = RunTokens.for_home(tmp_path)
    assert again.verify(first) == "r1"  # same key after a restart


def test_forged_tampered_and_expired_tokens_are_refused(tokens: RunTokens) -> None:
    token = tokens.mint("r1", now=1000.0)
    assert tokens.verify(token, now=1010.0) == "r1"
    with pytest.raises(RunTokenError, match="expired"):
        tokens.verify(token, now=1061.0)
    with pytest.raises(RunTokenError, match="signature"):
        tokens.verify(token.replace("kaonrun_r1.", "kaonrun_r2."), now=1010.0)
    with pytest.raises(RunTokenError, match="signature"):
        RunTokens(b"k" * 32).verify(token, now=1010.0)
    with pytest.raises(RunTokenError, match="malformed"):
        tokens.verify("kaonrun_nonsense")


def test_a_run_principal_acts_on_its_run_only(auth: AuthService, tokens: RunTokens) -> None:
    principal = auth.authenticate(tokens.mint("r1"))
    assert principal.run_scope == "r1" and principal.name == "run:r1"
    auth.check(principal, "viewer", run_id="r1")
    auth.check(principal, "operator", owner_group="ml", run_id="r1")
    for role, group, run in [
        ("viewer", None, None),  # a route about no run: workflows, tokens, audit, all runs
        ("viewer", None, "r2"),
        ("operator", "ml", "r2"),
        ("owner", None, "r1"),
        ("admin", None, "r1"),
    ]:
        with pytest.raises(PermissionDeniedError, match="run token"):
            auth.check(principal, role, owner_group=group, run_id=run)


def test_run_tokens_need_the_servers_key(tokens: RunTokens) -> None:
    store = SQLStore("sqlite://")
    try:
        plain = AuthService(SQLRegistryStore(store))
        with pytest.raises(AuthenticationError, match="not accepted"):
            plain.authenticate(tokens.mint("r1"))
        signed = AuthService(SQLRegistryStore(store), run_tokens=tokens)
        with pytest.raises(AuthenticationError, match="invalid run token"):
            signed.authenticate(RunTokens(b"x" * 32).mint("r1"))
    finally:
        store.close()


def test_signers_creating_the_key_at_once_agree_on_it(tmp_path: Path) -> None:
    """The engine's first steps mint tokens from several threads at once, and the API's
    process may read the key meanwhile: every signer must end up with the one key on disk
    (a signer that kept a key another replaced minted tokens the API refused as forged)."""
    for attempt in range(20):
        home = tmp_path / str(attempt)
        shared = RunTokens.for_home(home)
        minted, failed = _mint_at_once([shared] * 4 + [RunTokens.for_home(home) for _ in range(4)])
        assert failed == []
        checker = RunTokens.for_home(home)
        assert [checker.verify(token) for token in minted] == ["r1"] * 8
        assert [p.name for p in home.iterdir()] == ["run-token.key"]  # no partial left


def _mint_at_once(signers: list[RunTokens]) -> tuple[list[str], list[BaseException]]:
    barrier = threading.Barrier(len(signers))
    minted: list[str] = []
    failed: list[BaseException] = []

    def mint(signer: RunTokens) -> None:
        barrier.wait()
        try:
            minted.append(signer.mint("r1"))
        except BaseException as exc:
            failed.append(exc)

    threads = [threading.Thread(target=mint, args=(signer,)) for signer in signers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return minted, failed
