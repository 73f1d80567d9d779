"""Unix domain socket addresses: naming them, binding a listener, removing its file.

A path names a socket file; ``@name`` (systemd's and ``ss``'s notation) or
``"\\0name"`` names a Linux abstract socket, which has no file at all.
Binding replaces a stale socket file left by a process that died (as gRPC
does), but never a file that is not a socket, nor a socket a live server is
listening on: those are the errors they would be for a TCP port.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import stat
from dataclasses import dataclass

MAX_PATH_BYTES = 107
"""``sun_path`` holds 108 bytes on Linux, the last one the terminating NUL."""


def socket_address(path: str) -> str:
    """The address ``socket.bind``/``connect`` take for ``path`` (``@name`` -> ``\\0name``).

    Raises ValueError for an empty or too long path: the kernel would
    silently truncate it, or fail with an unhelpful message.
    """
    if not path:
        raise ValueError("a unix socket path cannot be empty")
    address = "\0" + path[1:] if path[0] == "@" else path
    if len(os.fsencode(address)) > MAX_PATH_BYTES:
        raise ValueError(
            f"unix socket path too long ({len(os.fsencode(address))} bytes,"
            f" at most {MAX_PATH_BYTES}): {path!r}"
        )
    return address


def is_abstract(address: str) -> bool:
    return address.startswith("\0")


def bind_listener(path: str) -> socket.socket:
    """A non-blocking stream socket bound to ``path`` (not yet listening)."""
    address = socket_address(path)
    if not is_abstract(address):
        _remove_stale_socket(address)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(address)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def connect(path: str) -> socket.socket:
    """A stream socket connected to ``path``, for ``loop.create_unix_connection(sock=...)``.

    Connected here rather than by the loop: uvloop cannot connect to an
    abstract name (libuv takes the address as a C string).
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, socket_address(path))
    except BaseException:
        sock.close()
        raise
    return sock


def _remove_stale_socket(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(errno.EEXIST, "exists and is not a socket (left alone)", path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.setblocking(False)
        outcome = probe.connect_ex(path)
    if outcome == errno.ECONNREFUSED:  # nobody listens: a dead server's file
        os.unlink(path)
    elif outcome != errno.ENOENT:  # accepted (or backlog full): a live server
        raise OSError(errno.EADDRINUSE, "a server is already listening on this socket", path)


@dataclass(frozen=True)
class SocketFile:
    """The file a listening socket was bound to, removable only while it is still that file.

    Another server may have replaced it since (after ours was found stale,
    or deliberately): :meth:`remove` then leaves the new one in place.
    """

    path: str
    device: int
    inode: int

    @classmethod
    def of(cls, sock: socket.socket) -> SocketFile | None:
        """The file of a bound unix socket; None for an abstract or unnamed one."""
        name = sock.getsockname()
        if not isinstance(name, str) or not name or is_abstract(name):
            return None
        path = os.path.abspath(name)
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return None
        return cls(path, info.st_dev, info.st_ino)

    def remove(self) -> None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return
        if (info.st_dev, info.st_ino) == (self.device, self.inode) and stat.S_ISSOCK(info.st_mode):
            os.unlink(self.path)
