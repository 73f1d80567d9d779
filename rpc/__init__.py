"""h2rpc: an asyncio HTTP/2 core (:mod:`rpc.core`) and a gRPC-compatible RPC framework."""

__version__ = "0.1.0"
