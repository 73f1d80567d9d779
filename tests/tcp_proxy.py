"""A TCP proxy for tests that can delay, black-hole or cut the traffic it relays.

``delay`` holds every chunk that long before passing it on, both ways, as a
long-distance link would (the round trip grows by twice the delay; how much
is in flight is not limited by the proxy). ``black_hole()`` keeps every
connection open but silently drops what either side sends: the peer looks
alive to TCP yet answers nothing, which is what a keepalive must detect.
``cut()`` closes every relayed connection at once.

``close()`` returns only once every accepted connection is gone, both legs:
since Python 3.12 ``asyncio.Server.wait_closed()`` waits for the connections
it accepted, so one left open hangs it (and the test with it).
"""

from __future__ import annotations

import asyncio


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, *, delay: float = 0.0) -> None:
        self.target = (target_host, target_port)
        self.delay = delay
        self.black_holed = False
        self.closed = False
        self.connections = 0
        """Connections accepted so far."""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    def black_hole(self, enabled: bool = True) -> None:
        self.black_holed = enabled

    def cut(self) -> None:
        """Close every relayed connection (both sides see the TCP connection end)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.closed = True
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        # Tracked before connecting upstream, so that a close() meanwhile cuts it.
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        if self.closed:
            # close() ran while we connected: nothing relays any more.
            for leg in (writer, up_writer):
                leg.transport.abort()
                self._writers.discard(leg)
            return
        self._writers.add(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._relay(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _relay(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        delayed: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        deliverer = loop.create_task(self._deliver(delayed, sink)) if self.delay > 0 else None
        try:
            while data := await source.read(65536):
                if self.black_holed:
                    continue
                if deliverer is not None:
                    delayed.put_nowait((loop.time() + self.delay, data))
                else:
                    sink.write(data)
                    await sink.drain()
            if deliverer is not None:
                await delayed.join()
        except (ConnectionError, OSError):
            pass
        finally:
            if deliverer is not None:
                deliverer.cancel()
                await asyncio.gather(deliverer, return_exceptions=True)
            # A black hole keeps the other side open (close() or cut() ends it):
            # asyncio.Server.wait_closed() waits for every connection (3.12+).
            if not self.black_holed:
                sink.transport.abort()
                self._writers.discard(sink)

    @staticmethod
    async def _deliver(
        delayed: asyncio.Queue[tuple[float, bytes]], sink: asyncio.StreamWriter
    ) -> None:
        """Pass on each chunk once its delay has passed, in order."""
        loop = asyncio.get_running_loop()
        while True:
            due, data = await delayed.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                sink.write(data)
                await sink.drain()
            except (ConnectionError, OSError):
                pass
            delayed.task_done()
