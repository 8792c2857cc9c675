"""Values are shown as written: the CLI printed every JSON value (outputs in ``show``, the
values of ``artifacts``, ``get``'s preview, the parameters line, ``compare``'s cells and item
labels) with non-ASCII text escaped ("Z\\u00fcrich 🍷" as ``"Z\\u00fcrich \\ud83c\\udf77"``), and
``compare`` printed a text parameter's control characters raw to the terminal."""

from __future__ import annotations

from pathlib import Path

FLOWS = str(Path(__file__).with_name("unicode_flows.py"))


def test_non_ascii_values_are_shown_as_written(kaon) -> None:  # type: ignore[no-untyped-def]
    code, out, err = kaon("run", f"{FLOWS}:cities")
    assert code == 0, err
    first = out.splitlines()[0].strip()
    code, out, err = kaon("run", f"{FLOWS}:cities", "-p", "city=Genève \x9b2J")
    assert code == 0, err
    second = out.splitlines()[0].strip()
    views = {
        "show": (("show", first), ['"Zürich 🍷"', 'params: {"city": "Zürich"}']),
        "artifacts": (("artifacts", first), ['"Zürich 🍷"', '"csi \\x9b2J end"']),
        "get": (("get", first, "describe", "--name", "city"), ['"Zürich 🍷"']),
        "compare": (("compare", first, second), ["Genève \\x9b2J", " Köln "]),
    }
    for name, (args, expected) in views.items():
        code, out, err = kaon(*args)
        assert code == 0, (name, err)
        for text in expected:
            assert text in out, (name, text, out)
        assert "\\u00" not in out and "\\ud83c" not in out, (name, out)
        assert "\x9b" not in out, (name, "a control character reached the terminal")
