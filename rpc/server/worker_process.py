"""One worker process of :mod:`rpc.server.workers`: builds the server, serves, drains on SIGTERM.

The supervisor starts it as a fresh interpreter (see :mod:`rpc.server.workers`
for why) with a :class:`WorkerConfig` as JSON on the command line. The worker
imports the ``module:factory`` it names, calls the factory (a plain function
or a coroutine function) for an :class:`rpc.Server`, and listens: on its own
socket bound with SO_REUSEPORT, or on the listening socket the supervisor
handed down (an inherited file descriptor). It then tells the supervisor
"ready" on its control socket and serves until SIGTERM, when it stops with
the configured grace: health NOT_SERVING, two-step GOAWAY, calls in flight
get ``grace`` seconds. The control socket also works the other way: when it
reads end-of-file, the supervisor is gone (killed with SIGKILL, say), and
the worker drains and exits rather than serve on as an orphan.

SIGINT is ignored: Ctrl-C at a terminal reaches every process of the
foreground group, and the supervisor alone decides what happens then (it
sends SIGTERM to each worker).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .server import Server

log = logging.getLogger(__name__)

READY = b"ready\n"
"""What a worker writes on its control socket once it listens."""

LOG_FORMAT = "%(asctime)s [worker %(process)d] %(name)s %(levelname)s: %(message)s"


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs, passed from the supervisor as JSON."""

    factory: str
    """``module:attribute``: a callable returning an :class:`rpc.Server` (or awaitable of one)."""
    host: str | None
    port: int
    grace: float | None
    control_fd: int
    """The worker's end of a socket pair with the supervisor (ready, and liveness)."""
    listen_fd: int | None
    """The supervisor's listening socket; None: bind host:port with SO_REUSEPORT."""
    sys_path: list[str]
    """The supervisor's ``sys.path``, so that the factory's module imports as it would there."""
    log_level: int | None
    """Configure logging at this level (the supervisor's); None: leave logging alone."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        return cls(**json.loads(text))


def load_factory(spec: str) -> Callable[[], Any]:
    """The callable that ``module:attribute`` names (``attribute`` may be dotted)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"a server factory is 'module:function', not {spec!r}")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec} is not callable: {target!r}")
    return target  # type: ignore[no-any-return]


async def build_server(spec: str) -> Server:
    """Call the factory ``spec`` names; awaits its result if it is awaitable."""
    server = load_factory(spec)()
    if inspect.isawaitable(server):
        server = await server
    if not isinstance(server, Server):
        raise TypeError(f"{spec} returned {server!r}, not an rpc.Server")
    return server


async def serve(config: WorkerConfig) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    control = socket.socket(fileno=config.control_fd)
    server = await build_server(config.factory)
    if config.listen_fd is not None:
        await server.start(sock=socket.socket(fileno=config.listen_fd))
    else:
        await server.start(config.host, config.port, reuse_port=True)
    reader, writer = await asyncio.open_connection(sock=control)
    writer.write(READY)
    await writer.drain()
    supervisor_gone = asyncio.ensure_future(reader.read())
    supervisor_gone.add_done_callback(lambda _: stop.set())
    await stop.wait()
    if supervisor_gone.done():
        log.warning("the supervisor is gone: draining")
    supervisor_gone.cancel()
    await server.stop(config.grace)
    writer.close()


def main(argv: Sequence[str] | None = None) -> None:
    """The worker's entry point: ``argv[0]`` is its :class:`WorkerConfig` as JSON."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = WorkerConfig.from_json((sys.argv[1:] if argv is None else argv)[0])
    if config.log_level is not None:
        logging.basicConfig(level=config.log_level, format=LOG_FORMAT)
    asyncio.run(serve(config))


BOOTSTRAP = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1])['sys_path']; "
    "from rpc.server.worker_process import main; main(sys.argv[1:])"
)
"""The ``python -c`` program that runs a worker: with the supervisor's ``sys.path``
first (as multiprocessing's spawn does), so that ``rpc`` and the factory's module
are found where the supervisor found them."""
