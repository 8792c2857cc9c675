"""`one`: a one-step run (start-up and a single transition, as a whole process)."""

import kaon


@kaon.step
def hello() -> int:
    return 1


@kaon.workflow
def one() -> None:
    hello()
