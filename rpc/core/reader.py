"""The read side of a connection: received bytes through the engine, then out once.

Each read is fed to the engine, whose events update the streams; then the
requests it brought are dispatched and what it made possible (ACKs, window
updates, data a window update unblocked) is written, once for the whole
read. An engine stops after its share of frames per read, so that one busy
connection does not starve the others: reading then pauses and goes on in a
later turn of the event loop. An error while the engine parses ends the
connection; nothing is left half-processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..http2 import Engine, ErrorCodes, ProtocolError
from .admission import Admission
from .closing import CloseSequence
from .errors import ConnectionClosedError
from .liveness import Liveness
from .sender import Sender
from .writer import Writer

log = logging.getLogger(__name__)


class Reader:
    """Feeds what the transport reads to the engine: feed, dispatch, flush."""

    __slots__ = ("_admission", "_closing", "_engine", "_liveness", "_loop", "_sender", "_writer")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        engine: Engine,
        writer: Writer,
        sender: Sender,
        admission: Admission,
        closing: CloseSequence,
        liveness: Liveness,
    ) -> None:
        self._loop = loop
        self._engine = engine
        self._writer = writer
        self._sender = sender
        self._admission = admission
        self._closing = closing
        self._liveness = liveness

    def received(self, data: bytes) -> None:
        """Bytes from the transport (``data_received``)."""
        self._liveness.heard_from_peer()
        if self._process(data):
            # The engine stopped after its share of frames: let other
            # connections run, then go on with what is left.
            transport = self._writer.transport
            if transport is not None:
                transport.pause_reading()
                self._loop.call_soon(self._continue)

    def _continue(self) -> None:
        transport = self._writer.transport
        if transport is None:
            return
        if self._process(b""):
            self._loop.call_soon(self._continue)
        else:
            transport.resume_reading()

    def _process(self, data: bytes) -> bool:
        """Feed the engine, dispatch the new requests, write what follows, once.

        True when the engine stopped with frames left to process. (One method,
        not a feed step and a dispatch step: it runs for every read.)
        """
        try:
            more = self._engine.receive(data)
        except ProtocolError as exc:
            log.debug("HTTP/2 protocol error from peer: %s", exc)
            self._closing.close_transport(
                ConnectionClosedError(f"HTTP/2 protocol error: {exc}", error_code=exc.error_code)
            )
            return False
        except Exception as exc:
            # A bug of ours must not leave the connection half-processed: tell
            # the peer and close, waking every waiter.
            log.exception("error while handling received HTTP/2 frames; closing the connection")
            with contextlib.suppress(Exception):
                self._engine.send_goaway(ErrorCodes.INTERNAL_ERROR)
            self._closing.close_transport(ConnectionClosedError(f"internal error: {exc!r}"))
            return False
        self._admission.dispatch()
        sender = self._sender
        if sender.has_work:
            sender.pump()  # it writes, whether or not it could send anything
        else:
            self._writer.flush()
        return more
