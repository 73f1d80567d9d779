"""The gRPC server: :class:`Server` routes each HTTP/2 stream to a handler, which sees
its call through a :class:`ServerContext`."""

from .context import ServerContext
from .server import Server, start_task, unimplemented_stream

__all__ = ["Server", "ServerContext", "start_task", "unimplemented_stream"]
