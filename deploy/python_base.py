"""Build a minimal Python base image from this machine's interpreter, with no registry.

    python deploy/python_base.py localhost/kaon-python:3.11 [--podman "podman --root DIR"]

Where a container registry is reachable, the Containerfile's default base
(``docker.io/library/python:3.11-slim``) is the one to use. This script is for hosts without
one (air-gapped build machines, the test suite): it assembles a root file system from the
running interpreter, laid out as the official image is (``/usr/local/bin/python3.X``, the
standard library in ``/usr/local/lib/python3.X``), and imports it with ``podman import``:

- the interpreter, its shared ``libpython`` if it has one, the standard library (without its
  tests, IDLE, Tk and the build configuration) and ``lib-dynload``;
- every shared library those binaries load (as ``ldd`` resolves them), at the same paths, and
  the system libraries that manylinux wheels expect (``libgcc_s``, ``libstdc++``, ...);
- pip, unpacked from the wheel that ``ensurepip`` bundles;
- the byte code of all of it;
- bash (shell steps run under it), and busybox as ``/bin/sh`` and the usual tools;
- ``/etc/passwd`` and ``/etc/group`` with ``root`` and ``kaon`` (uid and gid 10001).

The tar archive is reproducible: sorted entries, owner root, a fixed modification time.
"""

from __future__ import annotations

import argparse
import compileall
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
PREFIX = Path("usr/local")  # inside the image, as in the official python images
STDLIB_SKIP = {
    "site-packages", "test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip",
    "__pycache__",
}  # fmt: skip
BUSYBOX_TOOLS = (
    "sh", "cat", "chmod", "chown", "cp", "env", "echo", "grep", "id", "ln", "ls", "mkdir",
    "mv", "printf", "ps", "rm", "sleep", "test", "true", "false", "wc", "head", "tail", "sed",
)  # fmt: skip
# The system libraries that manylinux wheels may assume (PEP 600), besides those Python loads.
MANYLINUX_LIBRARIES = (
    "libgcc_s.so.1", "libstdc++.so.6", "libdl.so.2", "librt.so.1", "libpthread.so.0",
    "libutil.so.1", "libresolv.so.2", "libz.so.1",
)  # fmt: skip
PASSWD = "root:x:0:0:root:/root:/bin/sh\nkaon:x:10001:10001:kaon:/srv/kaon:/bin/sh\n"
GROUP = "root:x:0:\nkaon:x:10001:\n"
MTIME = 1_700_000_000


def _shared_libraries(binary: Path) -> Iterator[Path]:
    """The shared libraries ``binary`` loads, as ``ldd`` resolves them (loader included)."""
    listing = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    for line in listing.stdout.splitlines():
        match = re.search(r"(/\S+) \(0x", line)
        if match:
            yield Path(match.group(1))


def _skipped(name: str) -> bool:
    """Left out of the image: tests, IDLE, Tk, byte code (compiled afresh), build files."""
    skipped_prefix = name.startswith(("_tkinter", f"config-{VERSION}"))
    return name in STDLIB_SKIP or skipped_prefix or name.endswith(".pyc")


def _copy_file(source: Path, root: Path, target: Path) -> None:
    destination = root / target.relative_to("/") if target.is_absolute() else root / target
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, destination, follow_symlinks=True)


def assemble(root: Path) -> None:
    """Lay the interpreter, its libraries, pip and busybox out under ``root``."""
    stdlib = Path(sysconfig.get_path("stdlib"))
    binary = Path(sys.executable).resolve()
    if Path(sys.prefix) != Path(sys.base_prefix):  # a venv: its python is a link to the base
        binary = (Path(sys.base_prefix) / "bin" / f"python{VERSION}").resolve()
    bin_dir = PREFIX / "bin"
    _copy_file(binary, root, bin_dir / f"python{VERSION}")
    for alias in ("python3", "python"):
        (root / bin_dir / alias).symlink_to(f"python{VERSION}")
    shutil.copytree(
        stdlib,
        root / PREFIX / "lib" / f"python{VERSION}",
        ignore=lambda _d, names: [n for n in names if _skipped(n)],
    )
    (root / PREFIX / "lib" / f"python{VERSION}" / "site-packages").mkdir()
    elves = [binary, *(stdlib / "lib-dynload").glob("*.so")]
    bash = shutil.which("bash")  # shell steps run under bash
    if bash is not None:
        _copy_file(Path(bash).resolve(), root, Path("/bin/bash"))
        elves.append(Path(bash).resolve())
    libraries: set[Path] = set()
    for elf in elves:
        libraries.update(_shared_libraries(elf))
    system_dir = next(p.parent for p in libraries if p.name.startswith("libc.so"))
    libraries.update(
        system_dir / name for name in MANYLINUX_LIBRARIES if (system_dir / name).exists()
    )
    for library in sorted(libraries):
        # libpython goes to /usr/lib (a default search path); system libraries keep their path
        target = Path("/usr/lib") / library.name if "libpython" in library.name else library
        _copy_file(library, root, target)
    _install_pip(stdlib, root / PREFIX / "lib" / f"python{VERSION}" / "site-packages")
    # Byte-compiled ahead (as in the official images): an unprivileged user cannot write
    # __pycache__ there, and every process would compile what it imports again.
    library = root / PREFIX / "lib" / f"python{VERSION}"
    compileall.compile_dir(library, ddir=f"/{library.relative_to(root)}", quiet=1, workers=0)
    _install_busybox(root)
    etc = root / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "passwd").write_text(PASSWD)
    (etc / "group").write_text(GROUP)
    for folder in ("tmp", "root", "srv/kaon"):
        (root / folder).mkdir(parents=True, exist_ok=True)


def _install_pip(stdlib: Path, site_packages: Path) -> None:
    (wheel,) = (stdlib / "ensurepip" / "_bundled").glob("pip-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site_packages)


def _install_busybox(root: Path) -> None:
    busybox = shutil.which("busybox")
    if busybox is None:
        raise SystemExit("busybox is required (Debian: busybox-static)")
    _copy_file(Path(busybox), root, Path("/bin/busybox"))
    for tool in BUSYBOX_TOOLS:
        (root / "bin" / tool).symlink_to("busybox")


def _tar_filter(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = MTIME
    if info.name in {"./tmp", "tmp"}:
        info.mode = 0o1777
    if info.name in {"./srv/kaon", "srv/kaon"}:
        info.uid = info.gid = 10001
    return info


def archive(root: Path, out: io.BufferedWriter) -> None:
    """A reproducible tar of ``root``: sorted entries, root-owned, one modification time."""
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path in sorted(root.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False, filter=_tar_filter)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", help="the image name to create, e.g. localhost/kaon-python:3.11")
    parser.add_argument("--podman", default="podman", help="the podman command (with its flags)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kaon-base-") as work:
        root = Path(work) / "rootfs"
        root.mkdir()
        assemble(root)
        tar_path = Path(work) / "rootfs.tar"
        with tar_path.open("wb") as out:
            archive(root, out)
        command = [*shlex.split(args.podman), "import", "--change", "ENV PATH=" + _path()]
        command += ["--change", 'CMD ["python3"]', str(tar_path), args.image]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    sys.stdout.write(args.image + "\n")
    return 0


def _path() -> str:
    return "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
