"""Owner groups: the names that say whose a workflow is and where a token may act.

A workflow's ``owner_group`` and each of a token's ``groups`` follow one rule, so that a
token's group can match a workflow's at all: 1-200 characters, neither starting nor ending
with white space (``"ml "`` never matches ``ml``; ``""`` would make a token that is no longer
an organisation-wide reader yet matches no group). The API says it in its schema
(:data:`GROUP_PATTERN`); the service checks it on every path (API, CLI, local store). Groups
stored before the rule are read as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from kaon.errors import DefinitionError, Location, Problem

MAX_GROUP_LENGTH: Final = 200
GROUP_PATTERN: Final = r"^\S(?:.*\S)?$"
"""A group, as the API schema states it (with lengths 1 to :data:`MAX_GROUP_LENGTH`)."""
_GROUP: Final = re.compile(GROUP_PATTERN)


def group_problem(group: object) -> str | None:
    """Why ``group`` cannot name an owner group, or None when it can."""
    if not isinstance(group, str):
        return f"a group must be text, got {type(group).__name__}"
    if not 1 <= len(group) <= MAX_GROUP_LENGTH or _GROUP.fullmatch(group) is None:
        return (
            f"a group must be 1-{MAX_GROUP_LENGTH} characters on one line, neither starting "
            f"nor ending with a space, got {group!r:.60}"
        )
    return None


def check_group(group: str | None, field: str) -> None:
    """Raise DefinitionError naming ``field`` unless ``group`` is None or a valid group."""
    if group is not None and (why := group_problem(group)) is not None:
        raise DefinitionError(Problem(why, Location(field=field)))


def check_groups(groups: Iterable[str], field: str = "groups") -> None:
    """Raise DefinitionError listing every group that breaks the rule, each at
    ``field[index]``."""
    problems = [
        Problem(why, Location(field=f"{field}[{index}]"))
        for index, group in enumerate(groups)
        if (why := group_problem(group)) is not None
    ]
    if problems:
        raise DefinitionError(problems)
