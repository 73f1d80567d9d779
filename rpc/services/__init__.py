"""Standard gRPC services served by h2rpc: health (and, next, reflection)."""
