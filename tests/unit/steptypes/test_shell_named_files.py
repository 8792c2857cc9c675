"""Which project files a shell command's cache key counts: those it reads, not the files its
redirections write (a step writing ``out.txt`` would otherwise miss its cache once the file
exists, and never hit when what it writes changes each time)."""

from __future__ import annotations

from pathlib import Path

from kaon.steptypes.shell import ShellStepType, _named_files


def _names(folder: Path, command: str) -> list[str]:
    return [name for name, _path in _named_files({"command": command, "cwd": str(folder)})]


def test_a_redirection_target_is_written_not_read(tmp_path: Path) -> None:
    for name in ("in.csv", "out.txt", "err.log", "all.log"):
        (tmp_path / name).write_text("x\n")
    assert _names(tmp_path, "sort in.csv > out.txt") == ["in.csv"]
    assert _names(tmp_path, "sort in.csv >out.txt 2>>err.log") == ["in.csv"]
    assert _names(tmp_path, "sort <in.csv &> all.log") == ["in.csv"]
    assert _names(tmp_path, "cat in.csv|wc -l >| out.txt") == ["in.csv"]
    assert _names(tmp_path, "sort in.csv;cat out.txt") == ["in.csv", "out.txt"]  # read


def test_a_step_writing_a_file_keeps_its_fingerprint(tmp_path: Path) -> None:
    config = {"command": "date > stamp.txt", "cwd": str(tmp_path)}
    before = ShellStepType().fingerprint(config)
    (tmp_path / "stamp.txt").write_text("Mon Jan  1\n")  # what the step wrote
    assert ShellStepType().fingerprint(config) == before
