"""What an endpoint advertises and what it tolerates from a peer.

:class:`ConnectionSettings` is what goes into our SETTINGS frame (and the
connection window we open at once); :class:`Limits` are the defences: each is
a counter the engine keeps per connection and a bound past which the peer is
told GOAWAY(ENHANCE_YOUR_CALM) and the connection ends. Every limit bounds
either memory (checked *before* anything is buffered) or CPU (a peer that
makes us work without making progress).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

DEFAULT_MAX_FRAME_SIZE = 16_384
MAX_FRAME_SIZE_LIMIT = 16_777_215
MAX_WINDOW_SIZE = 2**31 - 1
DEFAULT_WINDOW_SIZE = 65_535
DEFAULT_HEADER_TABLE_SIZE = 4_096

HEADER_BLOCK_TO_LIST_RATIO = 8
"""The default cap on a header block's encoded size, in units of our
max_header_list_size. An honest encoder's block is no larger than the list
it carries, so a block over the list limit is over it anyway: this only
decides how far over it a peer may go and lose no more than its stream (a
client sending 300 KB of metadata by mistake), and past which it is a flood
that ends the connection. 8 x 64 KiB is 512 KiB buffered at most, two
frames' worth at our max_frame_size."""


class SettingCodes(enum.IntEnum):
    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6
    ENABLE_CONNECT_PROTOCOL = 0x8


@dataclass(frozen=True)
class Rate:
    """A token bucket: ``burst`` events at once, refilled at ``per_second``."""

    burst: int
    per_second: float

    def __post_init__(self) -> None:
        if self.burst < 1 or self.per_second < 0:
            raise ValueError("a rate needs burst >= 1 and per_second >= 0")


@dataclass(frozen=True)
class Limits:
    """Defences against abusive peers. Defaults leave real clients (grpcio,
    browsers, h2load at full speed) far below every bound."""

    stream_resets: Rate = Rate(burst=1_000, per_second=200.0)
    """Streams the peer opens and then resets (or that we must refuse or
    reset for its fault) faster than this: rapid reset, CVE-2023-44487."""
    control_frames: Rate = Rate(burst=10_000, per_second=5_000.0)
    """Frames that cost work but carry no request progress: PING, SETTINGS,
    WINDOW_UPDATE, PRIORITY, PRIORITY_UPDATE, unknown types, and empty
    DATA, HEADERS or CONTINUATION frames that end nothing."""
    settings_frames: Rate = Rate(burst=100, per_second=10.0)
    """SETTINGS frames (each may touch every open stream's window)."""
    max_continuation_frames: int = 64
    """CONTINUATION frames in one header block (CVE-2024-27316 class)."""
    max_header_block_size: int | None = None
    """Encoded bytes of one header block, checked as frames arrive, before
    they are buffered; past it, the connection ends. None:
    HEADER_BLOCK_TO_LIST_RATIO times the advertised max_header_list_size.
    A block under this bound whose decoded list is over max_header_list_size
    costs only its stream (HTTP 431 for a request)."""
    max_frames_per_receive: int = 2_000
    """Frames handled per ``receive`` call before yielding to other work, so
    one busy connection cannot monopolise the event loop."""
    max_closed_streams_remembered: int = 1_024
    """Recently closed streams whose late frames are tolerated (RFC 9113 5.1)."""
    handshake_timeout: float | None = 10.0
    """Seconds a peer has to complete its preface and first SETTINGS."""
    max_write_backlog: int = 16 << 20
    """Bytes queued on a transport the peer does not read, beyond which the
    connection is dropped (only control responses can pile up there: data
    sending stops while the transport is paused)."""


@dataclass(frozen=True)
class ConnectionSettings:
    """What this endpoint advertises and allows on one connection."""

    max_concurrent_streams: int | None = None
    """Streams the peer may open at once (None: no limit advertised)."""
    stream_window_size: int = (4 << 20) + (64 << 10)
    """Initial inbound window of every stream: the most one stream buffers unread
    (until ``grow_windows`` raises it). A 4 MiB message (gRPC's default size
    limit) and its prefix fit in it, so one never waits for a WINDOW_UPDATE
    half-way."""
    connection_window_size: int = 16 << 20
    """Inbound window of the whole connection: the most all streams buffer
    together (until ``grow_windows`` raises it)."""
    grow_windows: bool = True
    """Raise the two windows above while DATA arrives faster than they let it:
    a PING measures how much arrives in one round trip (the bandwidth-delay
    product), and a window nearly used up in that time is doubled (see
    :mod:`rpc.core.bdp`). Off: the windows stay as configured."""
    max_stream_window_size: int = 16 << 20
    """The most ``grow_windows`` raises the stream window to: 16 MiB keeps a
    single stream at full speed up to about 1.3 Gbit/s at 100 ms round trip."""
    max_connection_window_size: int = 64 << 20
    """The most ``grow_windows`` raises the connection window to: four full
    stream windows, the ratio of the defaults. It bounds what one connection
    can make us buffer, whatever the peer does."""
    max_unread_credited: int | None = None
    """Received DATA the application has not read yet whose connection-window
    credit went back on receipt, at most, all streams together (None:
    ``max(64 MiB, 4 * stream_window_size)``). Returning it on receipt keeps
    requests nobody reads (each bounded by its stream's window) from closing
    the connection window on the other calls; past this bound the credit
    waits for reads again. What one connection buffers unread is at most
    this plus the connection window."""
    max_frame_size: int = 256 << 10
    """Largest frame payload the peer may send us. Bigger than the RFC's 16 KiB
    default because every frame has a fixed cost: a 1 MiB message arrives in
    4 frames instead of 64."""
    max_header_list_size: int = 65_536
    oversized_request_response: tuple[tuple[bytes, bytes], ...] = ((b":status", b"431"),)
    """The answer (one header block, with END_STREAM) a server gives a request
    whose header list is over ``max_header_list_size``: HTTP 431 by default,
    as RFC 9113 10.5.1 suggests. A gRPC server answers with a Trailers-Only
    RESOURCE_EXHAUSTED instead, as grpc core does, so that gRPC clients
    report the right status (they have no mapping for 431)."""
    header_table_size: int = DEFAULT_HEADER_TABLE_SIZE
    """HPACK dynamic table the peer's encoder may use (our decoder's memory)."""
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.max_concurrent_streams is not None and self.max_concurrent_streams < 0:
            raise ValueError("max_concurrent_streams must be >= 0")
        if not 1 <= self.stream_window_size <= MAX_WINDOW_SIZE:
            raise ValueError(f"stream_window_size must be between 1 and {MAX_WINDOW_SIZE}")
        if not DEFAULT_WINDOW_SIZE <= self.connection_window_size <= MAX_WINDOW_SIZE:
            raise ValueError(
                f"connection_window_size must be between {DEFAULT_WINDOW_SIZE}"
                f" and {MAX_WINDOW_SIZE}"
            )
        if not 1 <= self.max_stream_window_size <= MAX_WINDOW_SIZE:
            raise ValueError(f"max_stream_window_size must be between 1 and {MAX_WINDOW_SIZE}")
        if not DEFAULT_WINDOW_SIZE <= self.max_connection_window_size <= MAX_WINDOW_SIZE:
            raise ValueError(
                f"max_connection_window_size must be between {DEFAULT_WINDOW_SIZE}"
                f" and {MAX_WINDOW_SIZE}"
            )
        if not DEFAULT_MAX_FRAME_SIZE <= self.max_frame_size <= MAX_FRAME_SIZE_LIMIT:
            raise ValueError(
                f"max_frame_size must be between {DEFAULT_MAX_FRAME_SIZE}"
                f" and {MAX_FRAME_SIZE_LIMIT}"
            )
        if self.max_unread_credited is not None and self.max_unread_credited < 0:
            raise ValueError("max_unread_credited must be >= 0")
        if self.max_header_list_size < 1024:
            raise ValueError("max_header_list_size must be at least 1024")
        if not 0 <= self.header_table_size <= 1 << 16:
            raise ValueError("header_table_size must be between 0 and 65536")

    @property
    def max_header_block_size(self) -> int:
        """Encoded size allowed for one header block (HEADERS + CONTINUATION)."""
        limit = self.limits.max_header_block_size
        if limit is None:
            return HEADER_BLOCK_TO_LIST_RATIO * self.max_header_list_size
        return limit

    @property
    def unread_credit_limit(self) -> int:
        """``max_unread_credited`` with its default applied."""
        limit = self.max_unread_credited
        return max(64 << 20, 4 * self.stream_window_size) if limit is None else limit

    def advertised(self, *, client_side: bool) -> dict[int, int]:
        """The SETTINGS frame's values, in the order they are sent."""
        values: dict[int, int] = {
            SettingCodes.MAX_HEADER_LIST_SIZE: self.max_header_list_size,
            SettingCodes.INITIAL_WINDOW_SIZE: self.stream_window_size,
            SettingCodes.MAX_FRAME_SIZE: self.max_frame_size,
        }
        if self.header_table_size != DEFAULT_HEADER_TABLE_SIZE:
            values[SettingCodes.HEADER_TABLE_SIZE] = self.header_table_size
        if self.max_concurrent_streams is not None:
            values[SettingCodes.MAX_CONCURRENT_STREAMS] = self.max_concurrent_streams
        if client_side:
            values[SettingCodes.ENABLE_PUSH] = 0
        return values
