"""Property: a script's statements come back whole, whatever literals and comments hold."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kaon.steptypes.sql import split_statements

# Text that may hold every separator a naive split would cut at.
_tricky = st.text(alphabet="ab ;:-*/$\n", max_size=12)
_literal = _tricky.map(lambda t: "'" + t.replace("'", "''") + "'")
_identifier = _tricky.map(lambda t: '"' + t.replace('"', '""') + '"')
_block_comment = _tricky.filter(lambda t: "*/" not in t).map(lambda t: f"/*{t}*/")
_line_comment = _tricky.filter(lambda t: "\n" not in t).map(lambda t: f"--{t}\n")
_dollar = _tricky.filter(lambda t: "$body$" not in t).map(lambda t: f"$body${t}$body$")
_part = st.one_of(_literal, _identifier, _block_comment, _line_comment, _dollar)
_statement = st.lists(_part, max_size=4).map(lambda parts: "select " + " ".join(parts) + " 1")


@given(st.lists(_statement, min_size=1, max_size=5), st.booleans())
def test_statements_joined_by_semicolons_split_back(statements: list[str], sqlite: bool) -> None:
    script = ";\n".join(statements)
    found = split_statements(script, sqlite=sqlite)
    assert [s.rstrip(";").strip() for s in found] == [s.strip() for s in statements]


@given(st.lists(st.one_of(_block_comment, _line_comment, st.just(";"), st.just(" "))))
def test_a_script_of_only_comments_has_no_statement(parts: list[str]) -> None:
    assert split_statements("".join(parts)) == []
