"""A worker process's file descriptors 1 and 2, as the running attempt's log.

The step runtime captures what a step writes through ``sys.stdout`` and ``sys.stderr``
(:mod:`kaon.executors.runtime`). What is written to the descriptors themselves bypasses
those: a child process the step starts (``subprocess.run(["some-cli", ...])``), C code,
``os.write(1, ...)``, ``sys.stdout.buffer``. In a process worker, which runs one attempt at a
time, :func:`install` puts a pipe on each descriptor, read by a thread that hands complete
lines to the attempt running (:meth:`FdCapture.attach`) as log lines, and passes bytes written
between attempts on to the real descriptor. When the attempt ends, :meth:`FdCapture.detach`
waits until what was written during it has been read (the pipe is empty and the reader idle),
so its last lines come before its end. Not used by the inline executor, whose attempts share
the engine's process and its descriptors.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import select
import termios
import threading
import time
from collections.abc import Callable

from kaon.model.events import LogStream

DRAIN_WAIT_S = 1.0  # at most this long for an attempt's last bytes to be read
MAX_LINE_BYTES = 8192  # a partial line longer than this is emitted as is (progress bars)

Emit = Callable[[LogStream, str], None]


class _Pipe:
    """One descriptor's pipe, its reader thread and its partial line."""

    def __init__(self, owner: FdCapture, fd: int, stream: LogStream) -> None:
        self.owner = owner
        self.stream: LogStream = stream
        self.fd = fd
        self.real = os.dup(fd)  # where bytes written between attempts go
        read, write = os.pipe()
        os.dup2(write, fd)
        # Kept (not inheritable) so that a step that closes or redirects ``fd`` cannot take
        # the pipe from the attempts after it: :meth:`restore` puts it back.
        self.write = write
        self.read = read
        self.partial = b""
        thread = threading.Thread(target=self._serve, name=f"kaon-fd-{fd}", daemon=True)
        thread.start()

    def restore(self) -> None:
        """Point the descriptor at the pipe again if a step closed or redirected it."""
        try:
            if os.path.sameopenfile(self.fd, self.write):
                return
        except OSError:  # closed
            pass
        with contextlib.suppress(OSError):
            os.dup2(self.write, self.fd)

    def pending(self) -> int:
        """Bytes in the pipe not read yet."""
        count = array.array("i", [0])
        try:
            fcntl.ioctl(self.read, termios.FIONREAD, count, True)
        except OSError:
            return 0
        return int(count[0])

    def _serve(self) -> None:
        # Bytes leave the pipe only under the lock: a detach that holds it and finds the pipe
        # empty knows that everything written before it has been handed on.
        poller = select.poll()
        poller.register(self.read, select.POLLIN)
        while True:
            try:
                poller.poll()
            except OSError:
                return
            with self.owner.lock:
                try:
                    data = os.read(self.read, 65536)
                except OSError:
                    return
                if not data:
                    return
                emit = self.owner.emit
                if emit is None:
                    self._pass_on(data)
                else:
                    self._lines(emit, data)
                self.owner.lock.notify_all()

    def _pass_on(self, data: bytes) -> None:
        with contextlib.suppress(OSError):  # nowhere to write: the worker's own is a courtesy
            os.write(self.real, data)

    def _lines(self, emit: Emit, data: bytes) -> None:
        pending = self.partial + data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            emit(self.stream, _text(line))
        if len(pending) > MAX_LINE_BYTES:
            emit(self.stream, _text(pending))
            pending = b""
        self.partial = pending

    def flush(self, emit: Emit) -> None:
        """(Holding the lock.) Emit the partial line, if any."""
        if self.partial:
            emit(self.stream, _text(self.partial))
            self.partial = b""


def _text(line: bytes) -> str:
    """A line as text: UTF-8, other bytes written as ``\\xNN``."""
    return line.rstrip(b"\r").decode("utf-8", "backslashreplace")


class FdCapture:
    """Descriptors 1 and 2 of this process, routed to the attempt attached."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.emit: Emit | None = None
        self.pipes = [_Pipe(self, 1, "stdout"), _Pipe(self, 2, "stderr")]

    def attach(self, emit: Emit) -> None:
        """Give what is written from now on to ``emit`` (the attempt starting)."""
        for pipe in self.pipes:  # the attempt before may have closed or redirected them
            pipe.restore()
        with self.lock:
            self.emit = emit

    def detach(self) -> None:
        """Hand on what the attempt wrote (waiting for the readers, at most
        :data:`DRAIN_WAIT_S`), its partial lines included, then stop giving lines to it."""
        deadline = time.monotonic() + DRAIN_WAIT_S
        with self.lock:
            emit = self.emit
            while any(p.pending() for p in self.pipes):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.lock.wait(min(left, 0.01))
            if emit is not None:
                for pipe in self.pipes:
                    pipe.flush(emit)
            self.emit = None


_installed: FdCapture | None = None


def install() -> FdCapture:
    """Capture this process's descriptors 1 and 2 (once; a process worker's)."""
    global _installed
    if _installed is None:
        _installed = FdCapture()
    return _installed


def installed() -> FdCapture | None:
    """The capture :func:`install` made in this process, if any."""
    return _installed
