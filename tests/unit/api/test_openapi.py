"""The OpenAPI document: operation ids named after the routes, and on each operation the
error answers it can give and only those; a client driven by the document alone works."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kaon.api.openapi import ERROR_CODES


@pytest.fixture
def document(client: Any) -> dict[str, Any]:
    return client.get("/openapi.json").json()  # type: ignore[no-any-return]


def _operations(document: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    found: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["operationId"] not in found, operation["operationId"]
            found[operation["operationId"]] = (method, path, operation)
    return found


def _errors(operation: dict[str, Any]) -> set[int]:
    return {int(c) for c in operation["responses"] if c.isdigit() and int(c) in ERROR_CODES}


def test_operation_ids_are_the_route_names(document: dict[str, Any]) -> None:
    operations = _operations(document)
    for name in ("get_run", "list_runs", "restart_run", "push", "healthz", "create_token"):
        assert name in operations
    assert all(re.fullmatch(r"[a-z][a-z_]*", op_id) for op_id in operations)


def test_each_operation_lists_only_the_errors_it_can_give(document: dict[str, Any]) -> None:
    operations = _operations(document)
    assert _errors(operations["healthz"][2]) == set()
    assert _errors(operations["list_workflows"][2]) == {401, 403, 422}
    assert _errors(operations["list_triggers"][2]) == {401, 403, 404, 422}  # ?workflow=
    assert _errors(operations["get_run"][2]) == {401, 403, 404, 422}
    assert {409, 413} <= _errors(operations["restart_run"][2])
    assert 409 not in _errors(operations["get_run"][2])


def test_a_client_driven_by_the_document_gets_only_documented_answers(
    client: Any, tokens: dict[str, str], document: dict[str, Any]
) -> None:
    """Call every read operation (a viewer's token, path parameters that name nothing) and
    every write without a token, the way a generated client would: by operation id, from the
    document alone. Each answer is one the document lists for that operation."""
    operations = _operations(document)

    def call(op_id: str, token: str | None, **path_params: str) -> Any:
        method, template, _ = operations[op_id]
        url = template.format(**path_params)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.request(method.upper(), url, headers=headers)

    assert call("whoami", tokens["viewer"]).json()["role"] == "viewer"
    missing = call("get_run", tokens["viewer"], run_id="r-nope")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFoundError"
    for op_id, (method, template, operation) in operations.items():
        if op_id == "stream_events":
            continue  # the live stream stays open: covered by its own tests
        names = re.findall(r"{(\w+)}", template)
        reading = method == "get"
        answer = call(op_id, tokens["viewer"] if reading else None, **dict.fromkeys(names, "x"))
        assert str(answer.status_code) in operation["responses"], (op_id, answer.status_code)
