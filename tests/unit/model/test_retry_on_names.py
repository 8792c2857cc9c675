"""Names of exception types in ``retry_on``: which are refused, and what is suggested."""

from __future__ import annotations

import pytest

from kaon.model.error_names import error_name_problem


@pytest.mark.parametrize(
    ("name", "suggested"),
    [
        ("ValueErorr", "ValueError"),
        ("VaueError", "ValueError"),
        ("KeyEror", "KeyError"),
        ("Timeouterror", "TimeoutError"),
        ("valueerror", "ValueError"),
        ("ConectionError", "ConnectionError"),
        ("RuntimeErrors", "RuntimeError"),
        ("mypkg.errors.ValueErorr", "ValueError"),
        ("builtins.ValueErorr", "ValueError"),
    ],
)
def test_a_close_misspelling_of_a_builtin_exception_is_refused(name: str, suggested: str) -> None:
    assert error_name_problem(name) == (
        f"unknown exception type {name!r}: did you mean {suggested!r}?"
    )


@pytest.mark.parametrize(
    "name",
    [
        "ValueError",
        "OSError",
        "builtins.KeyError",
        "TransientError",  # a user's own class, matched by its short name
        "mypkg.errors.TransientError",
        "requests.HTTPError",
        "requests.exceptions.ConnectionError",
        "pipeline.Flaky",
        "my-flow.Flaky",  # a user file's module is named by its file (kaon.steptypes.codeload)
        "tests.flow.<locals>.LocalError",  # a class made inside a function (its __qualname__)
        # Real classes whose names are near a builtin's: never taken for misspellings.
        "subprocess.CalledProcessError",  # ChildProcessError
        "CalledProcessError",
        "httpx.ConnectError",  # ConnectionError
        "NotFoundError",  # FileNotFoundError
        "pandas.errors.IndexingError",  # IndexError
        "fsspec.exceptions.FSTimeoutError",  # a builtin's name with a prefix
        "urllib3.exceptions.NewConnectionError",
        "ray.exceptions.GetTimeoutError",
        "tarfile.TarError",  # TabError: a standard library module's own class
    ],
)
def test_other_names_are_accepted(name: str) -> None:
    assert error_name_problem(name) is None


@pytest.mark.parametrize(
    "name",
    [" ", "Value Error", "ValueError,", ".ValueError", "ValueError.", "a..B", "1Error", 3],
)
def test_a_name_that_is_not_a_dotted_name_is_refused(name: object) -> None:
    problem = error_name_problem(name)
    assert problem is not None and "exception type" in problem and repr(name) in problem


def test_an_empty_name_is_refused() -> None:
    assert error_name_problem("") == "an exception type name cannot be empty"
