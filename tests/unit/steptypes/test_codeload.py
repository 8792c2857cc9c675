"""Each folder's modules load in a namespace of their own (kaon.steptypes.codeload)."""

from __future__ import annotations

import sys
from pathlib import Path

from kaon.steptypes.codeload import load_file_module, user_module_name


def _folder(root: Path, name: str, value: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "helper.py").write_text(f"VALUE = {value!r}\n")
    (folder / "flow.py").write_text("import helper\nfrom helper import VALUE\n")
    return folder / "flow.py"


def test_same_named_siblings_of_two_folders_coexist(tmp_path: Path) -> None:
    one = load_file_module(str(_folder(tmp_path, "one", "1")))
    two = load_file_module(str(_folder(tmp_path, "two", "2")))
    assert (one.helper.VALUE, one.VALUE, two.helper.VALUE, two.VALUE) == ("1", "1", "2", "2")
    assert one.helper is not two.helper
    assert one.helper.__name__ == user_module_name(str(tmp_path / "one" / "helper.py"))
    assert "helper" not in sys.modules and str(tmp_path / "one") not in sys.path


def test_a_sibling_loaded_by_file_is_the_imported_module(tmp_path: Path) -> None:
    flow = load_file_module(str(_folder(tmp_path, "p", "x")))
    assert load_file_module(str(tmp_path / "p" / "helper.py")) is flow.helper


def test_circular_sibling_imports_work(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import b\nNAME = 'a'\ndef other():\n    return b.NAME\n")
    (tmp_path / "b.py").write_text("import a\nNAME = 'b'\ndef other():\n    return a.NAME\n")
    a = load_file_module(str(tmp_path / "a.py"))
    assert a.other() == "b" and a.b.other() == "a"


def test_function_level_imports_and_stdlib_imports(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "f", "late").parent
    (folder / "late.py").write_text(
        "import json\ndef read():\n    import helper\n    return json.dumps(helper.VALUE)\n"
    )
    assert load_file_module(str(folder / "late.py")).read() == '"late"'


def test_a_local_sub_package_still_imports(tmp_path: Path) -> None:
    package = tmp_path / "kaon_test_localpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tools.py").write_text("def twice(x):\n    return 2 * x\n")
    (tmp_path / "uses.py").write_text("from kaon_test_localpkg.tools import twice\n")
    try:
        assert load_file_module(str(tmp_path / "uses.py")).twice(4) == 8
    finally:
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n.startswith("kaon_test_localpkg")]:
            del sys.modules[name]
