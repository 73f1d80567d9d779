"""Fixtures for the tests of :mod:`rpc.testing`: every test runs once per HTTP/2 engine,
and the Echo stubs of the gRPC-layer tests are generated at test time."""

from tests.grpc.conftest import _on_each_engine, echo_modules

__all__ = ["_on_each_engine", "echo_modules"]
