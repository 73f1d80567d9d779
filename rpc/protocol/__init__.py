"""gRPC call semantics as pure functions and data types: no I/O in here.

status codes and their mappings, metadata, grpc-timeout, message framing and
compression. The server and channel (one layer up) combine them with the
HTTP/2 core (one layer down); each module here is tested on its own.
"""
