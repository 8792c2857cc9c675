"""A workflow or step name the API cannot take is refused at push, not stored unusable.

Every route that names a workflow (``POST /runs``, the start form, the run history, the
activity) bounds the name at 200 characters: a longer name used to be pushed, then could
never be run, and its UI page failed on every read.
"""

from __future__ import annotations

from typing import Any

MAX_NAME_CHARS = 200  # the bound of every route that names a workflow


def _flow(name: str, step: str = "one") -> str:
    return (
        f"name: {name}\nparams:\n  a: {{type: int, default: 1}}\n"
        f"steps:\n  - id: {step}\n    shell: 'true'\n"
    )


def test_a_name_the_routes_take_is_the_longest_a_push_takes(
    client: Any, tokens: dict[str, str]
) -> None:
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    longest = "w" * MAX_NAME_CHARS
    pushed = client.post(
        "/workflows", json={"source": _flow(longest), "file_name": "w.yaml"}, headers=admin
    )
    assert pushed.status_code == 200, pushed.text
    for path in ("", "/params", "/runs", "/audit", "/versions"):
        assert client.get(f"/workflows/{longest}{path}", headers=admin).status_code == 200, path
    started = client.post("/runs", json={"workflow": longest}, headers=admin)
    assert started.status_code == 201, started.text

    for source in (_flow("w" * (MAX_NAME_CHARS + 1)), _flow("w", "s" * (MAX_NAME_CHARS + 1))):
        refused = client.post(
            "/workflows", json={"source": source, "file_name": "w.yaml"}, headers=admin
        )
        assert refused.status_code == 422, refused.text
        assert f"at most {MAX_NAME_CHARS} characters" in refused.json()["message"]
    assert client.get("/workflows/" + "w" * (MAX_NAME_CHARS + 1), headers=admin).status_code in (
        404,
        422,
    )
