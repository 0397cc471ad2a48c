"""What every private server the tests start has in common: its work directory, its process, a bounded stop."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Self


def terminate(process: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, then SIGKILL if the process has not exited within ``timeout``; its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    return process.returncode


class PeerProcess:
    """Base of the server fixtures: subclasses set ``_workdir`` and ``_process`` and define ``log_file``,
    ``start()`` and ``stop()``; a fixture is a context manager that stops its server even on failure."""

    _workdir: Path
    _process: subprocess.Popen[bytes] | None

    @property
    def log_file(self) -> Path:
        raise NotImplementedError

    @property
    def ca_file(self) -> Path:
        """The CA certificate a client must trust to verify this server as its domain."""
        return self._workdir / "certs" / "ca.crt"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
