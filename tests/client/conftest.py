"""Fixtures for the client tests: the same as the gRPC-layer tests' (every test
runs once per HTTP/2 engine; grpcio's Echo stubs generated at test time)."""

from tests.grpc.conftest import _on_each_engine, echo_modules

__all__ = ["_on_each_engine", "echo_modules"]
