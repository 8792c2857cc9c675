"""Which project files a shell command's cache key counts: the code it runs (a program, a
script it hands an interpreter), not the data it reads or writes, nor the files its
redirections write (a step writing ``out.txt`` or ``--out model.pkl`` would otherwise miss
its cache once the file exists, and never hit when what it writes changes each time)."""

from __future__ import annotations

from pathlib import Path

from kaon.steptypes.shell import ShellStepType, _named_files


def _names(folder: Path, command: str) -> list[str]:
    return [name for name, _path in _named_files({"command": command, "cwd": str(folder)})]


def test_a_redirection_target_is_written_not_read(tmp_path: Path) -> None:
    for name in ("prep.py", "out.sh", "run.sh", "in.csv", "model.pkl"):
        (tmp_path / name).write_text("x\n")
    assert _names(tmp_path, "python prep.py > out.sh") == ["prep.py"]
    assert _names(tmp_path, "python prep.py <in.csv >out.sh 2>>err.log") == ["prep.py"]
    assert _names(tmp_path, "cat in.csv|./run.sh >| out.sh") == ["./run.sh"]
    assert _names(tmp_path, "python prep.py;bash out.sh") == ["prep.py", "out.sh"]  # run
    assert _names(tmp_path, "./run.sh --data in.csv --out model.pkl") == ["./run.sh"]  # data


def test_a_step_writing_a_file_keeps_its_fingerprint(tmp_path: Path) -> None:
    config = {"command": "date > stamp.txt", "cwd": str(tmp_path)}
    before = ShellStepType().fingerprint(config)
    (tmp_path / "stamp.txt").write_text("Mon Jan  1\n")  # what the step wrote
    assert ShellStepType().fingerprint(config) == before
