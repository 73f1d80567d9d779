"""Several server processes on one port, supervised: ``h2rpc serve module:factory --workers N``.

A Python server uses one core; :class:`Supervisor` runs N worker processes,
each building its own :class:`rpc.Server` from a factory named by an import
string (``"myapp.main:make_server"``: a function, plain or async, returning
an unstarted Server) and listening on the same port:

- With SO_REUSEPORT (Linux, the BSDs, macOS) each worker binds its own
  socket on the port and the kernel spreads new connections among them. The
  supervisor binds the port first (without listening), so that port 0 is
  chosen once for all workers and stays reserved while workers restart.
- Without it (``share_socket=True``, or where the platform lacks it) the
  supervisor opens one listening socket and every worker inherits it; they
  all accept on it.

Either way a connection belongs to one worker for its whole life: calls
spread across workers as connections do (a client that wants its calls
spread opens several connections).

Supervision: a worker that exits is restarted, with a log line; one that
dies again soon after starting waits longer each time (``RestartPolicy``:
doubling backoff up to a cap). A worker that fails to start (exits before it
listens: a factory that raises, a broken import) ``max_start_failures`` times
in a row ends the supervisor: it stops the others and :meth:`Supervisor.run`
raises :class:`WorkerStartupError` (``h2rpc serve`` exits 1 with the reason).

SIGTERM or SIGINT to the supervisor drains everything: each worker gets
SIGTERM and stops as :meth:`rpc.Server.stop` with the grace does (its health
service turns NOT_SERVING, two-step GOAWAY, calls in flight get the grace
period), then the supervisor exits. Health checks reach whichever worker the
connection landed on: every worker serves the same status as long as the
factory builds the same server, and all turn NOT_SERVING as the drain starts.

Why fresh interpreters (:mod:`asyncio.subprocess`, ``python -c``) rather
than :mod:`multiprocessing`: a worker is a new process either way (spawn;
never fork, which would copy the supervisor's event loop and threads), but a
plain subprocess inherits the shared listening socket as a file descriptor
(``pass_fds``) with no resource-sharing thread in the supervisor, and the
supervisor waits for its children on its own event loop, next to its signal
handlers, with nothing blocking. The factory is an import string for the
same reason multiprocessing's spawn needs picklable targets: the worker
imports it afresh, with the supervisor's ``sys.path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .worker_process import BOOTSTRAP, READY, WorkerConfig

__all__ = ["RestartPolicy", "Supervisor", "WorkerStartupError", "serve"]

log = logging.getLogger(__name__)

DEFAULT_GRACE = 5.0

STOP_MARGIN = 10.0
"""Seconds a draining worker gets beyond the grace period before SIGKILL."""

HAS_REUSE_PORT = hasattr(socket, "SO_REUSEPORT")


class WorkerStartupError(RuntimeError):
    """A worker failed to start too many times in a row: the supervisor gave up."""


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a worker that exited, and when to give up.

    A worker that dies before it listens, or within ``stable_after`` seconds
    of listening, counts as a quick failure: the n-th in a row waits
    ``initial_backoff * 2**(n-1)`` seconds (at most ``max_backoff``) before
    its restart. A worker that had run stably is restarted at once.
    ``max_start_failures`` exits before listening, in a row, end the
    supervisor: a factory that cannot start will not start by retrying.
    """

    initial_backoff: float = 0.5
    max_backoff: float = 10.0
    stable_after: float = 10.0
    max_start_failures: int = 3

    def backoff(self, quick_failures: int) -> float:
        if quick_failures <= 0:
            return 0.0
        return float(min(self.max_backoff, self.initial_backoff * 2 ** (quick_failures - 1)))


class SupervisorState(enum.Enum):
    CREATED = "created"
    STARTING = "starting"  # workers spawned, not all listening yet
    RUNNING = "running"
    STOPPING = "stopping"  # draining the workers
    STOPPED = "stopped"


_TRANSITIONS = {
    SupervisorState.CREATED: {SupervisorState.STARTING, SupervisorState.STOPPED},
    SupervisorState.STARTING: {SupervisorState.RUNNING, SupervisorState.STOPPING},
    SupervisorState.RUNNING: {SupervisorState.STOPPING},
    SupervisorState.STOPPING: {SupervisorState.STOPPED},
    SupervisorState.STOPPED: set(),
}


@dataclass
class _Slot:
    """One of the N worker positions; its process is replaced when it dies."""

    index: int
    process: asyncio.subprocess.Process | None = None
    ready: asyncio.Event | None = None
    quick_failures: int = 0
    start_failures: int = 0


class Supervisor:
    """Runs ``workers`` processes serving the server ``factory`` builds, on one port.

    ``await start()`` binds the port, starts the workers and returns the
    port once every worker listens; ``await stop()`` drains them;
    ``await run()`` does both around SIGINT/SIGTERM. ``share_socket``
    chooses how the workers share the port (None: SO_REUSEPORT where the
    platform has it, else one listening socket inherited by all).
    ``log_level``: the level the workers configure logging at (default:
    the root logger's level here, if logging is configured).
    """

    def __init__(
        self,
        factory: str,
        host: str | None = "127.0.0.1",
        port: int = 0,
        *,
        workers: int,
        grace: float | None = DEFAULT_GRACE,
        share_socket: bool | None = None,
        restart_policy: RestartPolicy = RestartPolicy(),
        log_level: int | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.factory = factory
        self.host = host
        self.requested_port = port
        self.workers = workers
        self.grace = grace
        self.share_socket = not HAS_REUSE_PORT if share_socket is None else share_socket
        if not self.share_socket and not HAS_REUSE_PORT:
            raise ValueError("this platform has no SO_REUSEPORT: use share_socket=True")
        self.restart_policy = restart_policy
        self.log_level = _configured_level() if log_level is None else log_level
        self._state = SupervisorState.CREATED
        self._socket: socket.socket | None = None
        """Listening (shared) or merely bound (the SO_REUSEPORT port's reservation)."""
        self._slots = [_Slot(index) for index in range(workers)]
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._failure: WorkerStartupError | None = None
        self._failed = asyncio.Event()

    @property
    def state(self) -> SupervisorState:
        return self._state

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the supervisor is not started")
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def pids(self) -> list[int]:
        """The process ids of the workers alive now."""
        return [
            slot.process.pid
            for slot in self._slots
            if slot.process is not None and slot.process.returncode is None
        ]

    async def start(self) -> int:
        """Bind the port, start the workers; returns the port once each one listens.

        Raises :class:`WorkerStartupError` (after stopping the rest) if a
        worker fails to start ``max_start_failures`` times in a row. Returns
        early if :meth:`stop` is called meanwhile.
        """
        self._move(SupervisorState.STARTING)
        try:
            self._socket = self._bind()
        except OSError as exc:
            where = f"{self._where} port {self.requested_port}"
            raise OSError(exc.errno, f"cannot listen on {where}: {exc.strerror or exc}") from exc
        mode = "one shared listening socket" if self.share_socket else "SO_REUSEPORT"
        log.info(
            "starting %d workers on %s port %d (%s)", self.workers, self._where, self.port, mode
        )
        for slot in self._slots:
            slot.ready = asyncio.Event()
            self._tasks.append(asyncio.ensure_future(self._supervise(slot)))
        all_ready = asyncio.ensure_future(self._all_ready())
        failed = asyncio.ensure_future(self._failed.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({all_ready, failed, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (all_ready, failed, stopping):
                waiter.cancel()
        if self._failure is not None:
            await self.stop()
            raise self._failure
        if self._state is SupervisorState.STARTING:
            self._move(SupervisorState.RUNNING)
            log.info("serving on %s port %d with %d workers", self._where, self.port, self.workers)
        return self.port

    async def wait(self) -> None:
        """Until :meth:`stop` is called; raises :class:`WorkerStartupError` if a worker gave up."""
        failed = asyncio.ensure_future(self._failed.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({failed, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
            stopping.cancel()
        if self._failure is not None:
            raise self._failure

    async def stop(self) -> None:
        """Drain every worker (SIGTERM: each stops with its grace), then close the port.

        A worker still running ``grace`` plus :data:`STOP_MARGIN` seconds
        later is killed (logged). Calling it again waits for the same stop.
        """
        if self._state is SupervisorState.CREATED:
            self._move(SupervisorState.STOPPED)
            return
        if self._state in (SupervisorState.STARTING, SupervisorState.RUNNING):
            self._move(SupervisorState.STOPPING)
            self._stopping.set()
            if self._tasks:
                log.info("draining %d workers (grace %s s)", len(self.pids), self.grace)
            for slot in self._slots:
                _send(slot.process, signal.SIGTERM)
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=(self.grace or 0) + STOP_MARGIN)
            for slot in self._slots:
                if slot.process is not None and slot.process.returncode is None:
                    log.warning(
                        "worker %d (pid %d) did not stop: killed", slot.index, slot.process.pid
                    )
                    _send(slot.process, signal.SIGKILL)
            if late:
                await asyncio.wait(late)
        if self._socket is not None:
            self._socket.close()
        if self._state is SupervisorState.STOPPING:
            self._move(SupervisorState.STOPPED)
            if self._tasks:
                log.info("all workers stopped")

    async def run(self, on_ready: Callable[[int], object] | None = None) -> None:
        """Start, serve until SIGINT or SIGTERM, then :meth:`stop`.

        Once every worker listens it calls ``on_ready(port)`` (a program tells
        whoever started it on port 0 there). Raises
        :class:`WorkerStartupError` if workers cannot start. Signals during
        the drain are ignored: the drain goes on until it ends.
        """
        with self._signals_stop():
            try:
                port = await self.start()
                if self._state is SupervisorState.RUNNING and on_ready is not None:
                    on_ready(port)
                await self.wait()
            finally:
                await self.stop()

    # --- the workers -----------------------------------------------------------

    async def _supervise(self, slot: _Slot) -> None:
        """Keep one worker running until the supervisor stops (or gives up)."""
        try:
            await self._keep_running(slot)
        except Exception as exc:  # cannot start processes at all (EMFILE, ENOMEM...)
            log.exception("worker %d: cannot run a worker process", slot.index)
            self._fail(f"worker {slot.index}: cannot run a worker process: {exc!r}")

    async def _keep_running(self, slot: _Slot) -> None:
        while not self._stopping.is_set():
            assert slot.ready is not None
            process, listened_at = await self._run_worker(slot)
            if self._stopping.is_set():
                return
            self._count_exit(slot, listened_at)
            if slot.start_failures >= self.restart_policy.max_start_failures:
                self._give_up(slot, process)
                return
            delay = self.restart_policy.backoff(slot.quick_failures)
            log.warning(
                "worker %d (pid %d) exited with %s%s; restarting in %.1f s",
                slot.index,
                process.pid,
                _describe_exit(process.returncode),
                "" if listened_at is not None else " before it listened",
                delay,
            )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _run_worker(self, slot: _Slot) -> tuple[asyncio.subprocess.Process, float | None]:
        """Start a worker and wait for it to exit; returns it and when it listened (if it did)."""
        assert slot.ready is not None
        supervisor_end, worker_end = socket.socketpair()
        try:
            process = await self._spawn(worker_end)
        except BaseException:
            supervisor_end.close()
            raise
        finally:
            worker_end.close()
        slot.process = process
        listened_at: float | None = None
        reader, writer = await asyncio.open_connection(sock=supervisor_end)
        try:
            if self._stopping.is_set():  # stop() came while this one was being started
                _send(process, signal.SIGTERM)
            elif await reader.readline() == READY:
                listened_at = time.monotonic()
                slot.start_failures = 0
                slot.ready.set()
                log.info("worker %d listening (pid %d)", slot.index, process.pid)
            await process.wait()
        finally:
            writer.close()
        return process, listened_at

    async def _spawn(self, control: socket.socket) -> asyncio.subprocess.Process:
        assert self._socket is not None
        listen_fd = self._socket.fileno() if self.share_socket else None
        config = WorkerConfig(
            factory=self.factory,
            host=self.host,
            port=self.port,
            grace=self.grace,
            control_fd=control.fileno(),
            listen_fd=listen_fd,
            sys_path=list(sys.path),
            log_level=self.log_level,
        )
        pass_fds = [control.fileno()] + ([listen_fd] if listen_fd is not None else [])
        return await asyncio.create_subprocess_exec(
            sys.executable, "-c", BOOTSTRAP, config.to_json(), pass_fds=pass_fds
        )

    def _count_exit(self, slot: _Slot, listened_at: float | None) -> None:
        if listened_at is None:
            slot.start_failures += 1
            slot.quick_failures += 1
        elif time.monotonic() - listened_at < self.restart_policy.stable_after:
            slot.quick_failures += 1
        else:
            slot.quick_failures = 0

    def _give_up(self, slot: _Slot, process: asyncio.subprocess.Process) -> None:
        message = (
            f"worker {slot.index} failed to start {slot.start_failures} times in a row "
            f"(last: {_describe_exit(process.returncode)}; its error is above): "
            f"cannot serve {self.factory}"
        )
        log.error("%s", message)
        self._fail(message)

    def _fail(self, message: str) -> None:
        if self._failure is None:
            self._failure = WorkerStartupError(message)
            self._failed.set()

    async def _all_ready(self) -> None:
        for slot in self._slots:
            assert slot.ready is not None
            await slot.ready.wait()

    # --- the port ----------------------------------------------------------------

    def _bind(self) -> socket.socket:
        """The shared listening socket, or the SO_REUSEPORT reservation of the port.

        The reservation is bound but never listens, so it takes no
        connections; it fixes the port (port 0: chosen here, once) and keeps
        it while workers come and go.
        """
        family, kind, proto, _, address = socket.getaddrinfo(
            self.host, self.requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if not self.share_socket:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            if self.share_socket:
                sock.listen(socket.SOMAXCONN)
        except BaseException:
            sock.close()
            raise
        return sock

    @property
    def _where(self) -> str:
        return self.host or "all interfaces"

    # --- signals and states ------------------------------------------------------

    @contextlib.contextmanager
    def _signals_stop(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            yield
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    def _on_signal(self, signum: int) -> None:
        if self._state in (SupervisorState.STARTING, SupervisorState.RUNNING):
            log.info("%s received", signal.Signals(signum).name)
            self._stopping.set()  # run() wakes from wait() and stops

    def _move(self, state: SupervisorState) -> None:
        if state not in _TRANSITIONS[self._state]:
            raise RuntimeError(
                f"the supervisor cannot go from {self._state.value} to {state.value}"
            )
        self._state = state


def _send(process: asyncio.subprocess.Process | None, signum: int) -> None:
    if process is not None and process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)


def _describe_exit(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"signal {signal.Signals(-returncode).name}"
    return f"status {returncode}"


def _configured_level() -> int | None:
    root = logging.getLogger()
    return root.getEffectiveLevel() if root.handlers else None


def serve(
    factory: str,
    host: str | None = "127.0.0.1",
    port: int = 0,
    *,
    workers: int,
    grace: float | None = DEFAULT_GRACE,
    share_socket: bool | None = None,
    on_ready: Callable[[int], object] | None = None,
) -> int:
    """Run a :class:`Supervisor` until SIGINT or SIGTERM; returns an exit status.

    0 after a drain; 1 if the port cannot be bound or the workers could not
    start (the reason is logged).
    What a program's main calls (``h2rpc serve`` and the helloworld example do).
    """
    supervisor = Supervisor(
        factory, host, port, workers=workers, grace=grace, share_socket=share_socket
    )
    try:
        asyncio.run(supervisor.run(on_ready))
    except WorkerStartupError:  # logged where it happened
        return 1
    except OSError as exc:  # the port cannot be bound
        log.error("%s", exc)
        return 1
    return 0


def current_directory_importable() -> None:
    """Put the working directory first on ``sys.path``, as ``python -m`` would.

    For a console script (``h2rpc serve app:make_server``), whose ``sys.path``
    starts with its own directory: the factory's module is then found where
    the user stands, as uvicorn and gunicorn do.
    """
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
