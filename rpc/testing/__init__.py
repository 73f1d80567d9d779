"""Test helpers: a gRPC channel to servicers served in memory, and a pytest plugin.

``async with rpc.testing.channel_for([Greeter()]) as channel:`` gives a
:class:`rpc.Channel` whose calls go through the real gRPC client and server
and both sides' HTTP/2 engines, over an in-process transport pair
(:mod:`rpc.core.memory`): no socket, no port, nothing to clean up. The pytest
plugin (:mod:`rpc.testing.pytest_plugin`, registered through the ``pytest11``
entry point) offers it as fixtures.
"""

from .channel import MEMORY_TARGET, channel_for

__all__ = ["MEMORY_TARGET", "channel_for"]
