"""Request messages as JSON documents: from text given whole, or from stdin as it arrives.

``h2rpc call`` sends a streamed request as soon as its JSON document is
complete, so a bidi call can be driven by hand (or by another program): type a
message, see the answers, type the next. Stdin is read by a thread of its own,
feeding the event loop, because a blocking read on the loop would stop the
responses from being printed, and ``loop.connect_read_pipe`` refuses regular
files and terminals on some platforms.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any, NoReturn

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor

from .dynamic import message_class
from .errors import CliError, invalid

STDIN_QUEUE_LINES = 64
"""Lines read ahead of what was sent: the back-pressure on a large input file."""

_POLL_SECONDS = 0.5
"""How often the stdin thread, held by a full queue, checks that the call still wants input."""


class JsonDocuments:
    """Serialized ``descriptor`` messages from JSON text that arrives in pieces.

    Documents may be concatenated or one per line, and one may span lines: a
    document is taken when it is complete. Text that cannot become valid JSON
    however it continues is an error at once, not at the end of the input.
    """

    def __init__(self, descriptor: Descriptor) -> None:
        self._descriptor = descriptor
        self._class = message_class(descriptor)
        self._decoder = json.JSONDecoder()
        self._pending = ""
        self.count = 0
        """Messages made so far (the number of the next one, minus one, in error messages)."""

    def feed(self, text: str) -> list[bytes]:
        """The messages whose documents ``text`` completes (raises CliError on bad input)."""
        return self._take(self._pending + text, final=False)

    def end(self) -> list[bytes]:
        """The input ended: the last messages; a document left incomplete is an error."""
        return self._take(self._pending, final=True)

    def _take(self, text: str, *, final: bool) -> list[bytes]:
        messages: list[bytes] = []
        position = 0
        while True:
            while position < len(text) and text[position].isspace():
                position += 1
            if position == len(text):
                break
            try:
                document, end = self._decoder.raw_decode(text, position)
            except json.JSONDecodeError as exc:
                if exc.pos >= len(text) and not final:
                    break  # a document still arriving: wait for the rest
                raise invalid(f"request {self.count + 1} is not JSON: {exc}") from None
            messages.append(self._message(document))
            position = end
        self._pending = text[position:]
        return messages

    def _message(self, document: Any) -> bytes:
        self.count += 1
        if not isinstance(document, dict):
            raise invalid(
                f"request {self.count} is not a {self._descriptor.full_name}: "
                "expected a JSON object"
            )
        try:
            message = json_format.ParseDict(document, self._class())
        except json_format.ParseError as exc:
            raise invalid(
                f"request {self.count} is not a {self._descriptor.full_name}: {exc}"
            ) from None
        return message.SerializeToString()


def parse_json_messages(text: str, descriptor: Descriptor) -> list[bytes]:
    """Serialized messages from all the JSON documents of ``text``."""
    documents = JsonDocuments(descriptor)
    return documents.feed(text) + documents.end()


class StdinMessages:
    """The messages of the JSON documents on stdin, each yielded as soon as it is complete.

    Iterate it once, as a call's request iterable. A bad document ends the
    iteration with CliError; since the channel turns that into a CANCELLED call,
    the error is also kept in :attr:`error` for the command to report instead.
    """

    def __init__(self, descriptor: Descriptor) -> None:
        self._documents = JsonDocuments(descriptor)
        self.error: CliError | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | BaseException | None] = asyncio.Queue(STDIN_QUEUE_LINES)
        stop = threading.Event()
        reader = threading.Thread(
            target=_read_lines, args=(loop, lines, stop), name="h2rpc-stdin", daemon=True
        )
        reader.start()
        try:
            while True:
                batch = [await lines.get()]
                while not lines.empty():  # lines already read: parse them in one go
                    batch.append(lines.get_nowait())
                text = "".join(item for item in batch if isinstance(item, str))
                for message in self._take(text):
                    yield message
                ending = batch[-1]
                if isinstance(ending, str):
                    continue
                if ending is not None:
                    self._fail(invalid(f"cannot read stdin: {ending}"))
                for message in self._take(None):
                    yield message
                return
        finally:
            stop.set()

    def _take(self, text: str | None) -> list[bytes]:
        """The messages ``text`` completes; None: the input ended."""
        try:
            return self._documents.end() if text is None else self._documents.feed(text)
        except CliError as exc:
            self._fail(exc)

    def _fail(self, error: CliError) -> NoReturn:
        self.error = error
        raise error


def _read_lines(
    loop: asyncio.AbstractEventLoop,
    lines: asyncio.Queue[str | BaseException | None],
    stop: threading.Event,
) -> None:
    """The stdin thread: each line into ``lines``, then None at the end (or the read error).

    It ends early when the call no longer reads (``stop``) or the loop is gone; a
    thread blocked reading a terminal cannot be interrupted, hence a daemon thread.
    """
    while not stop.is_set():
        item: str | BaseException | None
        try:
            item = sys.stdin.readline() or None
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            item = exc
        if not _put(loop, lines, item, stop) or not isinstance(item, str):
            return


def _put(
    loop: asyncio.AbstractEventLoop,
    lines: asyncio.Queue[str | BaseException | None],
    item: str | BaseException | None,
    stop: threading.Event,
) -> bool:
    """Hand ``item`` to the loop, waiting while the queue is full; False if nobody wants it."""
    putting = lines.put(item)
    try:
        put = asyncio.run_coroutine_threadsafe(putting, loop)
    except RuntimeError:  # the loop is closed
        putting.close()
        return False
    while True:
        try:
            put.result(_POLL_SECONDS)
            return True
        except concurrent.futures.TimeoutError:
            if stop.is_set() or loop.is_closed():
                put.cancel()
                return False
        except concurrent.futures.CancelledError:  # by the loop, as it ended
            return False
