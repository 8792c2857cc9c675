"""The OpenAPI document: operation ids from the routes' function names, and on each operation
only the error answers it can give.

FastAPI's default operation id (``get_run_runs__run_id__get``) is made for uniqueness, not for
the clients generated from the document; Kaon's route names are unique, so they are the ids
(``get_run``, ``restart_run``). The routers declare every error answer (see
:data:`kaon.api.errors.ERROR_RESPONSES`); :func:`error_codes` keeps those an operation can
return, by what it takes:

* 401 and 403 where a token is needed (the operation has a security requirement);
* 404 where it names something (a path parameter, a query parameter such as ``workflow``, or
  a body naming a workflow or run);
* 400, 409 and 413 for the methods that change something (the request guard bounds every
  such body; the current state may refuse the action);
* 422 where there is input to refuse (parameters or a body; the guard's JSON checks).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

ERROR_CODES = frozenset({400, 401, 403, 404, 409, 413, 422})
# Query parameters that name something which may not exist (a filter on an unknown workflow).
NAMING_QUERY = frozenset({"workflow", "run", "run_id", "step", "path", "version", "backfill"})
READ_METHODS = frozenset({"get", "head", "options"})


def operation_id(route: APIRoute) -> str:
    """The operation id of ``route``: its function's name (``get_run``)."""
    return route.name


def error_codes(method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation can answer (see the module's docs)."""
    codes: set[int] = set()
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    if operation.get("security"):
        codes |= {401, 403}
    names = any(
        p.get("in") == "path" or (p.get("in") == "query" and p.get("name") in NAMING_QUERY)
        for p in parameters
    )
    if has_body or names:
        codes.add(404)
    if method not in READ_METHODS:
        codes |= {400, 409, 413, 422}
    if parameters or has_body:
        codes.add(422)
    return codes


def prune_errors(document: dict[str, Any]) -> None:
    """Drop from every operation of ``document`` the error answers it cannot give."""
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            keep = error_codes(method, operation)
            responses = operation["responses"]
            for code in list(responses):
                if code.isdigit() and int(code) in ERROR_CODES and int(code) not in keep:
                    del responses[code]


def install_openapi(app: FastAPI) -> None:
    """Make ``app`` publish the pruned document (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
                separate_input_output_schemas=app.separate_input_output_schemas,
            )
            prune_errors(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
