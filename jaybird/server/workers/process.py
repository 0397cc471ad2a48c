"""``jaybird serve`` with ``workers = N > 1``: a supervisor process and N worker processes.

The supervisor does what must happen once (the schema migrations, self-signed certificates), then starts the
workers, each a ``jaybird serve`` of its own given its index, the directory of the link sockets and two pipes:
one it writes ``ready`` on once it is linked to the others and listening, one whose end of file tells it the
supervisor is gone. Each worker binds the client ports with SO_REUSEPORT, so the kernel spreads connections over
them, and routes stanzas to the others over the links (:mod:`jaybird.server.workers.mesh`).

SIGTERM or SIGINT to the supervisor stops every worker gracefully. A worker that exits on its own (it crashed,
was killed, lost a link) makes the supervisor stop the others and exit non-zero: the server never runs on with
part of its sessions missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from jaybird.server.certs import ensure_certificate
from jaybird.server.config import ServerConfig
from jaybird.server.storage import open_storage

__all__ = ["WorkerPipes", "prefix_worker_logs", "run_supervisor", "run_worker"]

log = logging.getLogger("jaybird.server.workers")

#: How long a worker may take to start (link to the others, listen) before the supervisor gives up.
START_TIMEOUT_S: Final = 60.0
#: How long a worker may take to stop gracefully (its own shutdown is bounded at 5 s) before it is killed.
STOP_TIMEOUT_S: Final = 15.0
_READY: Final = b"ready\n"
#: How long a worker that exited cleanly may precede the supervisor's own SIGINT/SIGTERM.
_STOP_GRACE_S: Final = 0.5

#: argv of worker ``index``: the same ``jaybird serve`` with its index, the link directory and its two pipes.
WorkerCommand = Callable[[int, Path, "WorkerPipes"], Sequence[str]]


class WorkerPipes:
    """The file descriptors a worker is given: it writes ``ready`` on ``ready``; ``lifeline`` reads end of file
    once the supervisor is gone."""

    def __init__(self, ready: int, lifeline: int) -> None:
        self.ready = ready
        self.lifeline = lifeline

    def __str__(self) -> str:
        return f"{self.ready},{self.lifeline}"

    @classmethod
    def parse(cls, text: str) -> WorkerPipes:
        ready, _, lifeline = text.partition(",")
        return cls(int(ready), int(lifeline))


class _LogPrefix(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self._prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "_worker_prefixed", False):
            record.msg = f"{self._prefix}{record.getMessage()}"
            record.args = None
            record._worker_prefixed = True
        return True


def prefix_worker_logs(index: int) -> None:
    """Every log line of this process starts with ``[worker <index>]`` (the workers share one stderr)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(_LogPrefix(f"[worker {index}] "))


# -- the supervisor -----------------------------------------------------------------------------------------------


async def prepare(config: ServerConfig) -> None:
    """What the workers must find done: the data directory, self-signed certificates, the schema migrated."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    for host in config.hosts:
        paths = config.certificate_for(host)
        if paths.self_signed:
            ensure_certificate(host.domain, paths.cert_file, paths.key_file)
    storage = await open_storage(config.storage.url)  # migrates to the newest revision
    await storage.close()


class _Worker:
    def __init__(self, index: int, process: asyncio.subprocess.Process, ready: asyncio.StreamReader, lifeline: int):
        self.index = index
        self.process = process
        self.ready = ready
        self.lifeline = lifeline


async def run_supervisor(config: ServerConfig, command: WorkerCommand, *, on_ready: Callable[[], None]) -> int:
    """Start ``config.workers`` workers and watch them until SIGTERM/SIGINT or one ends; the exit status."""
    await prepare(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    directory = Path(tempfile.mkdtemp(prefix="jaybird-workers-"))
    workers: list[_Worker] = []
    try:
        for index in range(config.workers):
            workers.append(await _spawn(index, directory, command))
        log.info("started %d workers (pids %s)", len(workers), ", ".join(str(w.process.pid) for w in workers))
        return await _watch(workers, stop, on_ready)
    finally:
        await _stop_all(workers)
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
        for worker in workers:
            with contextlib.suppress(OSError):
                os.close(worker.lifeline)
        shutil.rmtree(directory, ignore_errors=True)


async def _spawn(index: int, directory: Path, command: WorkerCommand) -> _Worker:
    ready_r, ready_w = os.pipe()
    life_r, life_w = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            *command(index, directory, WorkerPipes(ready_w, life_r)),
            stdin=subprocess.DEVNULL,
            pass_fds=(ready_w, life_r),
        )
    except BaseException:
        for fd in (ready_r, ready_w, life_r, life_w):
            os.close(fd)
        raise
    os.close(ready_w)
    os.close(life_r)
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(ready_r, "rb", buffering=0))
    return _Worker(index, process, reader, life_w)


async def _watch(workers: list[_Worker], stop: asyncio.Event, on_ready: Callable[[], None]) -> int:
    exits: dict[asyncio.Future[Any], _Worker] = {asyncio.ensure_future(w.process.wait()): w for w in workers}
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    ready: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*(w.ready.readline() for w in workers)))
    waiting: set[asyncio.Future[Any]] = {*exits, stopping, ready}
    try:
        async with asyncio.timeout(START_TIMEOUT_S) as deadline:
            while True:
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if stopping in done:
                    log.info("stopping %d workers", len(workers))
                    return 0
                if ready in done:
                    waiting.discard(ready)
                    lines = ready.result()
                    if all(line == _READY for line in lines):
                        deadline.reschedule(None)
                        log.info("all %d workers ready", len(workers))
                        on_ready()
                for future in done & exits.keys():
                    worker = exits[future]
                    # A SIGINT from a terminal reaches the workers too, and one may be gone before the
                    # supervisor has run its own handler: that is a stop, not a failure.
                    if worker.process.returncode == 0:
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(_STOP_GRACE_S):
                                await stop.wait()
                        if stop.is_set():
                            log.info("stopping %d workers", len(workers))
                            return 0
                    log.error(
                        "worker %d (pid %d) %s; stopping the other workers",
                        worker.index,
                        worker.process.pid,
                        _describe(worker.process.returncode),
                    )
                    return 1
    except TimeoutError:
        log.error("the workers did not all start within %.0f s; stopping them", START_TIMEOUT_S)
        return 1
    finally:
        for future in waiting:
            future.cancel()


def _describe(status: int | None) -> str:
    if status is not None and status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


async def _stop_all(workers: list[_Worker]) -> None:
    """SIGTERM to every worker still running, SIGKILL to those not gone within STOP_TIMEOUT_S."""
    running = [w for w in workers if w.process.returncode is None]
    for worker in running:
        with contextlib.suppress(ProcessLookupError):
            worker.process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(STOP_TIMEOUT_S):
            await asyncio.gather(*(w.process.wait() for w in running))
    except TimeoutError:
        for worker in running:
            if worker.process.returncode is None:
                log.error("worker %d (pid %d) did not stop in time; killing it", worker.index, worker.process.pid)
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
        await asyncio.gather(*(w.process.wait() for w in running))
    for worker in running:
        if worker.process.returncode != 0:
            log.warning("worker %d %s", worker.index, _describe(worker.process.returncode))


# -- a worker -----------------------------------------------------------------------------------------------------


async def run_worker(config: ServerConfig, index: int, directory: Path, pipes: WorkerPipes) -> int:
    """Serve as worker ``index`` until SIGTERM/SIGINT (status 0), a lost link or the supervisor's end (1)."""
    from jaybird.server.app import Server, freeze_startup_objects
    from jaybird.server.workers.mesh import WorkerMesh

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    orphaned = asyncio.Event()
    lifeline = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(lifeline), os.fdopen(pipes.lifeline, "rb", buffering=0)
    )

    async def watch_supervisor() -> None:
        await lifeline.read()  # end of file: the supervisor is gone
        orphaned.set()

    watcher = asyncio.ensure_future(watch_supervisor())
    mesh = WorkerMesh(index, config.workers, directory)
    server = Server(config, mesh=mesh)
    try:
        await server.start()
        freeze_startup_objects()
        os.write(pipes.ready, _READY)
        os.close(pipes.ready)
        waits = [asyncio.ensure_future(e.wait()) for e in (stop, mesh.failed, orphaned)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in waits:
                future.cancel()
        if orphaned.is_set() and not stop.is_set():
            log.error("the supervisor is gone; stopping")
        await server.stop()
    finally:
        watcher.cancel()
    return 0 if stop.is_set() and mesh.failure is None else 1
