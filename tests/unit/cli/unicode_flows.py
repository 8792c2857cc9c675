"""A workflow whose parameters, outputs and foreach items are non-ASCII text."""

from __future__ import annotations

import kaon


@kaon.step
def describe(city: str) -> dict[str, str]:
    return {"city": f"{city} 🍷", "raw": "csi \x9b2J end"}


@kaon.step
def score(place: str) -> int:
    kaon.context().metric("score", len(place))
    return len(place)


@kaon.workflow
def cities(city: str = "Zürich") -> None:
    describe(city)
    with kaon.foreach(["Genève", "Köln"], id="each", as_="place") as fe:
        score(fe.item)
