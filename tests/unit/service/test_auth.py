"""Tokens, roles per owner group, and the audit trail."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kaon.errors import DefinitionError, NotFoundError
from kaon.service.auth import (
    AuthenticationError,
    AuthService,
    PermissionDeniedError,
    Principal,
    hash_token,
    role_rank,
)
from kaon.store.registry import SQLRegistryStore, TokenRecord
from kaon.store.sql import SQLStore


@pytest.fixture
def auth() -> Iterator[AuthService]:
    store = SQLStore("sqlite://")
    try:
        yield AuthService(SQLRegistryStore(store), cache_s=0.0)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("principal", "role", "group", "allowed"),
    [
        (Principal("v", "viewer"), "viewer", "ml", True),
        (Principal("v", "viewer"), "operator", None, False),
        (Principal("o", "operator", ("ml",)), "operator", "ml", True),
        (Principal("o", "operator", ("ml",)), "operator", "data", False),
        (Principal("o", "operator", ("ml",)), "operator", None, True),
        (Principal("o", "operator", ("ml",)), "owner", "ml", False),
        (Principal("w", "owner", ("*",)), "owner", "data", True),
        (Principal("a", "admin"), "admin", "anything", True),
        # Reading another group's runs, logs and sources needs membership (issue 14)...
        (Principal("w", "owner", ("ml",)), "viewer", "data", False),
        (Principal("w", "owner", ("ml",)), "viewer", None, True),
        # ...except for a token without groups: an organisation-wide reader.
        (Principal("v", "viewer"), "viewer", "data", True),
    ],
)
def test_roles_and_groups(
    principal: Principal, role: str, group: str | None, allowed: bool
) -> None:
    assert principal.can(role, group) is allowed


def test_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown role 'root'"):
        role_rank("root")


def test_tokens_are_stored_hashed_and_authenticate(auth: AuthService) -> None:
    record, secret = auth.create_token("ci", "operator", ["ml", "ml"])
    assert record.hashed == hash_token(secret) and secret not in record.hashed
    assert record.groups == ["ml"]
    principal = auth.authenticate(secret)
    assert principal == Principal("ci", "operator", ("ml",), record.id)
    stored = auth.registry.token_by_hash(record.hashed)
    assert stored is not None and stored.last_used_at is not None


def test_authentication_failures(auth: AuthService) -> None:
    record, secret = auth.create_token("ci", "viewer")
    with pytest.raises(AuthenticationError, match="missing"):
        auth.authenticate(None)
    with pytest.raises(AuthenticationError, match="unknown"):
        auth.authenticate(secret + "x")
    auth.revoke(record.id, by="admin")
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.authenticate(secret)
    with pytest.raises(NotFoundError):
        auth.revoke("ghost", by="admin")


def test_check_explains_refusals(auth: AuthService) -> None:
    operator = Principal("op", "operator", ("ml",))
    with pytest.raises(PermissionDeniedError, match="needs owner"):
        auth.check(operator, "owner")
    with pytest.raises(PermissionDeniedError, match="not in group 'data'"):
        auth.check(operator, "operator", owner_group="data")
    auth.check(operator, "operator", owner_group="ml")


def test_creating_tokens_is_audited(auth: AuthService) -> None:
    assert not auth.has_tokens()
    auth.create_token("ci", "viewer", by="ann")
    assert auth.has_tokens()
    [entry] = auth.registry.audit()
    assert (entry.actor, entry.action, entry.data["role"]) == ("ann", "token.create", "viewer")
    with pytest.raises(ValueError):
        auth.create_token(" ", "viewer")


def test_the_audit_of_a_new_token_says_which_groups_it_acts_in(auth: AuthService) -> None:
    # token.create recorded the role but not the groups: an admin who gave a token the
    # group '*' (every group's workflows) left no trace of it in the audit trail.
    assert auth.create_first_admin("root") is not None
    auth.create_token("deploy", "owner", ["ml", "*"], by="root")
    first, second = auth.registry.audit()
    assert (first.actor, first.data["groups"]) == ("server", ["*"])
    assert (second.actor, second.data["groups"]) == ("root", ["*", "ml"])
    assert second.data == {"name": "deploy", "role": "owner", "groups": ["*", "ml"]} | {
        "expires_at": None
    }


@pytest.mark.parametrize("group", ["", "ml ", " ml", "x" * 201])
def test_a_token_group_follows_the_owner_group_rule(auth: AuthService, group: str) -> None:
    """A token's groups were taken as given: ``""`` (a token that is then no longer an
    organisation-wide reader, yet matches no group) or ``"ml "`` (never ``ml``) made a
    token that silently could not read what it was made for. A group follows the rule of a
    workflow's owner group, and the refusal names the group's place."""
    with pytest.raises(DefinitionError) as refused:
        auth.create_token("ci", "viewer", ["ml", group])
    [problem] = refused.value.problems
    assert problem.location.field == "groups[1]"
    assert not auth.has_tokens() and not auth.registry.audit()


def test_a_token_stored_with_a_group_the_rule_refuses_still_loads(auth: AuthService) -> None:
    """Tokens stored before the rule keep working and listing (reads never fail)."""
    secret = "kaon_stored-before-the-rule"
    record = TokenRecord("old", "old", hash_token(secret), "viewer", ["", "ml "])
    auth.registry.add_token(record)
    assert [t.groups for t in auth.registry.list_tokens()] == [["", "ml "]]
    assert auth.authenticate(secret).groups == ("", "ml ")


class _NoListing(SQLRegistryStore):
    """A registry that refuses to read every token: what a lookup of one must not need."""

    def list_tokens(self, **_: object) -> list[TokenRecord]:
        raise AssertionError("read every token to find one")


def test_rotating_and_revoking_a_token_reads_that_token_only() -> None:
    """Rotating a token read the whole tokens table to find the one rotated (and picked it
    out in Python): its cost grew with every token ever made. It is read by its id."""
    store = SQLStore("sqlite://")
    try:
        auth = AuthService(_NoListing(store), cache_s=0.0)
        made = [auth.create_token(f"t{i}", "viewer", [], by="admin")[0] for i in range(50)]
        record, secret = auth.rotate(made[20].id, by="admin")
        assert record.id == made[20].id and record.name == "t20"
        assert auth.authenticate(secret).name == "t20"
        auth.revoke(made[20].id, by="admin")
        with pytest.raises(NotFoundError, match="no live token"):
            auth.rotate(made[20].id, by="admin")
        with pytest.raises(NotFoundError, match="no live token"):
            auth.rotate("no-such-token", by="admin")
    finally:
        store.close()
