"""rpc.status without a connection: building, reading and checking google.rpc.Status."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from google.protobuf import any_pb2, descriptor_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

import rpc.status
from rpc import RpcError, StatusCode
from rpc.status import _builtin_status_class

ROOT = Path(__file__).resolve().parents[2]


def _bad_request() -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(
        field_violations=[error_details_pb2.BadRequest.FieldViolation(field="name")]
    )


def test_to_status_packs_messages_and_copies_anys_of_any_pool() -> None:
    foreign_any = any_pb2.Any()
    foreign_any.Pack(duration_pb2.Duration(seconds=3))
    error = rpc.status.to_status(
        StatusCode.INVALID_ARGUMENT, "bad name", [_bad_request(), foreign_any]
    )
    assert isinstance(error, RpcError)
    assert error.code is StatusCode.INVALID_ARGUMENT and error.details == "bad name"
    sent = status_pb2.Status.FromString(error.status_details or b"")
    assert sent.code == StatusCode.INVALID_ARGUMENT and sent.message == "bad name"
    unpacked = error_details_pb2.BadRequest()
    assert sent.details[0].Unpack(unpacked) and unpacked == _bad_request()
    assert sent.details[1].TypeName() == "google.protobuf.Duration"


def test_to_status_from_a_status_message_as_grpcio_status_does() -> None:
    status = status_pb2.Status(code=StatusCode.NOT_FOUND, message="no such key")
    status.details.add().Pack(error_details_pb2.ResourceInfo(resource_name="k"))
    error = rpc.status.to_status(status)
    assert error.code is StatusCode.NOT_FOUND and error.details == "no such key"
    assert error.status_details == status.SerializeToString()
    with pytest.raises(TypeError):
        rpc.status.to_status(status, "extra")  # type: ignore[call-overload]


def test_to_status_refuses_ok() -> None:
    with pytest.raises(ValueError):
        rpc.status.to_status(StatusCode.OK, "fine")


def test_from_error_round_trip_and_none_without_details() -> None:
    error = rpc.status.to_status(StatusCode.ABORTED, "retry", [_bad_request()])
    status = rpc.status.from_error(error)
    assert status is not None
    assert status.code == StatusCode.ABORTED and status.message == "retry"
    assert status.details[0].Is(error_details_pb2.BadRequest.DESCRIPTOR)
    assert rpc.status.from_error(RpcError(StatusCode.ABORTED, "retry")) is None


@pytest.mark.parametrize(
    ("code", "message", "complaint"),
    [(StatusCode.INTERNAL, "retry", "code"), (StatusCode.ABORTED, "other", "message")],
)
def test_from_error_checks_code_and_message_like_grpcio_status(
    code: StatusCode, message: str, complaint: str
) -> None:
    details = status_pb2.Status(code=StatusCode.ABORTED, message="retry").SerializeToString()
    with pytest.raises(ValueError, match=complaint):
        rpc.status.from_error(RpcError(code, message, status_details=details))


def test_from_error_rejects_bytes_that_are_not_a_status() -> None:
    with pytest.raises(ValueError, match="grpc-status-details-bin"):
        rpc.status.from_error(RpcError(StatusCode.ABORTED, "x", status_details=b"\xff\xff\xff"))


def test_builtin_status_is_googleapis_status_field_for_field() -> None:
    builtin = _builtin_status_class()
    ours, theirs = descriptor_pb2.FileDescriptorProto(), descriptor_pb2.FileDescriptorProto()
    builtin.DESCRIPTOR.file.CopyToProto(ours)
    status_pb2.DESCRIPTOR.CopyToProto(theirs)
    assert ours == theirs
    # And the bytes of one are the other's.
    status = builtin(code=3, message="m")
    status.details.add().Pack(_bad_request())  # type: ignore[attr-defined]
    assert (
        status_pb2.Status.FromString(status.SerializeToString())
        .details[0]
        .Is(error_details_pb2.BadRequest.DESCRIPTOR)
    )
    assert builtin is not status_pb2.Status  # a private pool: no clash with googleapis


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_without_googleapis_the_builtin_class_is_used_and_googleapis_can_come_later() -> None:
    out = _run(
        """
        import sys
        sys.modules["google.rpc.status_pb2"] = None   # as if not installed
        import rpc.status
        assert rpc.status.Status.__module__ != "google.rpc.status_pb2", rpc.status.Status
        error = rpc.status.to_status(5, "gone")
        del sys.modules["google.rpc.status_pb2"]
        from google.rpc import status_pb2             # installed later: no clash
        print(status_pb2.Status.FromString(error.status_details).message)
        """
    )
    assert out.strip() == "gone"


def test_a_googleapis_that_fails_to_import_falls_back_with_a_warning() -> None:
    out = _run(
        """
        import importlib.abc, importlib.machinery, sys

        class Mismatched(importlib.abc.MetaPathFinder, importlib.abc.Loader):
            def find_spec(self, name, path, target=None):
                if name == "google.rpc.status_pb2":
                    return importlib.machinery.ModuleSpec(name, self)
            def create_module(self, spec):
                return None
            def exec_module(self, module):
                from google.protobuf.runtime_version import VersionError
                raise VersionError("gencode for another protobuf major version")

        sys.meta_path.insert(0, Mismatched())
        import rpc.status
        status = rpc.status.from_error(rpc.status.to_status(9, "no"))
        print(status.code, status.message)
        """
    )
    assert out.strip() == "9 no"
