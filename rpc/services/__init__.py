"""Standard gRPC services served by h2rpc: health and server reflection."""
