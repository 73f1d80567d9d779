"""Flow-control arithmetic (RFC 9113 5.2, 6.9), with no frames and no I/O.

Two small classes, one per direction, used for the connection and for every
stream. They only count; the engine decides what an overflow means (stream
or connection error) and queues the frames.
"""

from __future__ import annotations

from .settings import MAX_WINDOW_SIZE


class WindowOverflow(Exception):
    """A window would exceed 2**31 - 1: FLOW_CONTROL_ERROR (RFC 9113 6.9.1)."""


class SendWindow:
    """What the peer lets us send.

    It may become negative: when the peer lowers SETTINGS_INITIAL_WINDOW_SIZE
    after we used a stream's window, the difference is owed (RFC 9113 6.9.2).
    """

    __slots__ = ("available",)

    def __init__(self, initial: int) -> None:
        self.available = initial

    def consume(self, nbytes: int) -> None:
        self.available -= nbytes

    def expand(self, increment: int) -> None:
        """Apply a WINDOW_UPDATE increment or a positive SETTINGS delta."""
        available = self.available + increment
        if available > MAX_WINDOW_SIZE:
            raise WindowOverflow(f"window of {available} bytes exceeds 2**31 - 1")
        self.available = available


class ReceiveWindow:
    """What we let the peer send, and the credit we owe it back.

    Received bytes leave the window at once (:meth:`consume`); they return
    only when the application has read them (:meth:`acknowledge`), so a slow
    reader stops the peer instead of filling our memory. Returned credit is
    coalesced: a WINDOW_UPDATE goes out once at least half the window is
    owed, so a stream of small reads costs one frame per half window, not
    one per read.
    """

    __slots__ = ("available", "owed", "size")

    def __init__(self, size: int, available: int | None = None) -> None:
        self.size = size
        """The window we want the peer to have when everything is read."""
        self.available = size if available is None else available
        """Bytes the peer may still send, as the peer counts them."""
        self.owed = 0
        """Bytes read by the application and not yet returned to the peer."""

    def consume(self, nbytes: int) -> bool:
        """Account for received bytes; False if the peer overran its window."""
        if nbytes > self.available:
            return False
        self.available -= nbytes
        return True

    def acknowledge(self, nbytes: int) -> int:
        """Record ``nbytes`` read; the WINDOW_UPDATE increment due now, or 0.

        Never returns more than is outstanding, so an owner acknowledging
        twice cannot push the window past its size (or past 2**31 - 1).
        """
        owed = min(self.owed + nbytes, self.size - self.available)
        if owed <= 0:
            self.owed = 0
            return 0
        if owed * 2 < self.size:
            self.owed = owed
            return 0
        self.owed = 0
        self.available += owed
        return owed

    def resize(self, size: int) -> None:
        """Our SETTINGS_INITIAL_WINDOW_SIZE took effect: move the window by the delta.

        The peer applies the same delta on its side when it acknowledges our
        SETTINGS, so ``available`` may go negative (RFC 9113 6.9.2).
        """
        delta = size - self.size
        self.size = size
        self.available += delta
        self.owed = max(0, min(self.owed, size - self.available))

    def enlarge(self, size: int) -> int:
        """Grow the window to ``size`` at once; the WINDOW_UPDATE increment due, or 0.

        For the connection window, which no SETTINGS moves: the increment
        grants the peer the difference now, and credit owed keeps coming back
        as it is read, up to the new size. Never shrinks (0 when ``size`` is
        not larger).
        """
        increment = size - self.size
        if increment <= 0:
            return 0
        if self.available + increment > MAX_WINDOW_SIZE:
            raise WindowOverflow(f"window of {self.available + increment} bytes exceeds 2**31 - 1")
        self.size = size
        self.available += increment
        return increment
