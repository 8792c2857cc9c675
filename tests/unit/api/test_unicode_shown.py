"""Values shown as JSON by the UI's reads keep their text: an item ``Zürich`` is shown as
``"Zürich"``, not ``"Z\\u00fcrich"`` (the item column, a task's input preview)."""

from __future__ import annotations

from typing import Any

from kaon.api.deps import Services

FLOW = """name: places
params:
  city: {type: str, default: "東京 🚀"}
steps:
  - id: names
    shell: 'echo ''::kaon::output items=["Zürich", "東京"]'''
  - id: each
    foreach: "${{ steps.names.items }}"
    steps:
      - id: greet
        shell: echo "$KAON_INPUT_NAME $KAON_INPUT_CITY"
        inputs: {name: "${{ item }}", city: "${{ params.city }}"}
"""


def test_items_and_inputs_are_shown_as_written(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    owner = {"Authorization": f"Bearer {tokens['owner']}"}
    assert client.post("/workflows", json={"source": FLOW, "file_name": "p.yaml"}, headers=owner)
    run = client.post("/runs", json={"workflow": "places"}, headers=owner).json()
    services.runs.execute(run["id"])
    page = client.get(f"/runs/{run['id']}/children", params={"parent": "each"}, headers=owner)
    assert [i["item"] for i in page.json()["items"]] == ['"Zürich"', '"東京"']
    step = client.get(f"/runs/{run['id']}/step", params={"path": "each[1].greet"}, headers=owner)
    previews = {i["name"]: i["preview"] for i in step.json()["inputs"]}
    assert previews == {"name": '"東京"', "city": '"東京 🚀"'}


def test_searches_find_text_as_written(
    client: Any, tokens: dict[str, str], services: Services
) -> None:
    """``q`` finds a run by a parameter and an item by its text as written, not by the
    ``\\u00fc`` escape the SQLite store keeps it in."""
    owner = {"Authorization": f"Bearer {tokens['owner']}"}
    assert client.post("/workflows", json={"source": FLOW, "file_name": "p.yaml"}, headers=owner)
    run = client.post(
        "/runs", json={"workflow": "places", "params": {"city": 'ünï "q" \\'}}, headers=owner
    ).json()
    services.runs.execute(run["id"])

    def runs(q: str) -> int:
        found = client.get("/workflows/places/runs", params={"q": q}, headers=owner)
        return int(found.json()["total"])

    def items(q: str) -> list[str]:
        params = {"parent": "each", "q": q}
        page = client.get(f"/runs/{run['id']}/children", params=params, headers=owner)
        return [i["item"] for i in page.json()["items"]]

    assert runs("ünï") == runs('"q" \\') == 1
    assert runs("\\u00fc") == 0
    assert items("Zürich") == ['"Zürich"'] and items("東京") == ['"東京"']
