"""A workflow whose values, logs, metrics and errors look like rich markup."""

from __future__ import annotations

import kaon


@kaon.step
def echo(text: str) -> str:
    print(f"log {text}")
    return text


@kaon.step
def burst(text: str) -> int:
    raise RuntimeError(f"boom {text}")


@kaon.workflow
def marked(text: str = "plain", n: int = 1, tags: list[str] | None = None) -> None:
    said = echo(text)
    burst.options(id="explode")(said)
