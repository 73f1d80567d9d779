"""Channel targets: what ``Channel(target)`` connects to, in gRPC's naming syntax.

Supported (gRPC's ``doc/naming.md``)::

    host:port, [v6addr]:port      TCP (``port`` may also be given apart)
    unix:path, unix:/abs/path     a Unix socket file (relative paths allowed)
    unix:///abs/path              the same, URI form (the authority must be empty)
    unix-abstract:name            a Linux abstract socket (no file)

A Unix target's ``:authority`` is ``localhost``, as grpc-go and grpc-java
send (grpc C-core sends the escaped path); ``Channel(authority=...)``
overrides it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Target:
    """Where a channel connects: ``host``/``port``, or a Unix socket ``unix``."""

    host: str
    port: int
    unix: str | None = None
    """The socket path (``\\0name`` for an abstract socket), or None for TCP."""
    text: str = ""
    """The target as given, for messages."""

    @property
    def default_authority(self) -> str | None:
        """The ``:authority`` unless the channel is given one (None: ``host:port``)."""
        return "localhost" if self.unix is not None else None


def parse_target(target: str, port: int | None = None) -> Target:
    """Parse a channel target; raises ValueError for anything it does not name."""
    if target.startswith("unix-abstract:"):
        _no_port(target, port)
        name = target[len("unix-abstract:") :]
        if not name:
            raise ValueError(f"the target {target!r} names no abstract socket")
        return Target("localhost", 0, "\0" + name, target)
    if target.startswith("unix:"):
        _no_port(target, port)
        path = target[len("unix:") :]
        if path.startswith("//"):
            path = path[2:]
            if not path.startswith("/"):
                raise ValueError(
                    f"a unix:// target takes an absolute path (unix:///path), not {target!r}"
                )
        if not path:
            raise ValueError(f"the unix target {target!r} names no socket path")
        if path.startswith("@"):  # a file named so, not rpc.core.unix's abstract notation
            path = "./" + path
        return Target("localhost", 0, path, target)
    if port is None:
        host, sep, port_text = target.rpartition(":")
        if not sep or not port_text.isdigit():
            raise ValueError(
                f"target must be 'host:port', 'unix:path' or 'unix-abstract:name', not {target!r}"
            )
        return Target(host.strip("[]"), int(port_text), None, target)
    return Target(target.strip("[]"), port, None, f"{target}:{port}")


def _no_port(target: str, port: int | None) -> None:
    if port is not None:
        raise ValueError(f"a unix socket target takes no port: {target!r}, port {port}")
