"""Reflected files that use other files' types without importing them (as grpc-js's
``@grpc/reflection`` serves them) are completed with those imports, without Node."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor

from rpc.cli.errors import CliError
from rpc.cli.imports import missing_imports
from rpc.cli.schema import Schema

FieldProto = descriptor_pb2.FieldDescriptorProto


def _files() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """``app.proto`` (package a) uses ``.b.Thing``, ``b.Thing.Kind`` and a relative
    ``Other``; their files are not among its dependencies."""
    thing = descriptor_pb2.FileDescriptorProto(name="b_package.proto", package="b", syntax="proto3")
    message = thing.message_type.add(name="Thing")
    message.enum_type.add(name="Kind").value.add(name="KIND_UNSPECIFIED", number=0)
    other = descriptor_pb2.FileDescriptorProto(name="a_other.proto", package="a", syntax="proto3")
    other.message_type.add(name="Other")
    app = descriptor_pb2.FileDescriptorProto(name="app.proto", package="a", syntax="proto3")
    request = app.message_type.add(name="Request")
    request.field.add(
        name="thing", number=1, type=FieldProto.TYPE_MESSAGE, type_name=".b.Thing",
        label=FieldProto.LABEL_OPTIONAL,
    )  # fmt: skip
    request.field.add(
        name="kind", number=2, type=FieldProto.TYPE_ENUM, type_name="b.Thing.Kind",
        label=FieldProto.LABEL_OPTIONAL,
    )  # fmt: skip
    request.field.add(
        name="other", number=3, type=FieldProto.TYPE_MESSAGE, type_name="Other",
        label=FieldProto.LABEL_OPTIONAL,
    )  # fmt: skip
    request.field.add(
        name="self", number=4, type=FieldProto.TYPE_MESSAGE, type_name="Request",
        label=FieldProto.LABEL_OPTIONAL,
    )  # fmt: skip
    service = app.service.add(name="Svc")
    service.method.add(name="Call", input_type="Request", output_type=".a.Other")
    return {file.name: file for file in (app, thing, other)}


class _Received(Schema):
    async def service_names(self) -> list[str]:
        return []

    async def _load(self, symbol: str) -> bool:
        return False

    def add(self, files: dict[str, descriptor_pb2.FileDescriptorProto]) -> None:
        serialized = {name: file.SerializeToString() for name, file in files.items()}
        self._add_files(serialized.values(), serialized)


def test_missing_imports_are_the_files_defining_the_types_used() -> None:
    files = _files()
    assert missing_imports(files["app.proto"], files) == ["b_package.proto", "a_other.proto"]
    assert missing_imports(files["b_package.proto"], files) == []


def test_a_file_without_its_imports_is_added_with_them() -> None:
    schema = _Received()
    schema.add(_files())
    request = schema.pool.FindMessageTypeByName("a.Request")
    assert isinstance(request, Descriptor)
    assert request.fields_by_name["thing"].message_type.full_name == "b.Thing"
    assert schema.pool.FindMethodByName("a.Svc.Call").output_type.full_name == "a.Other"


def test_a_type_nobody_defines_is_still_an_error() -> None:
    files = _files()
    del files["b_package.proto"]
    with pytest.raises(CliError, match=r"cannot use app\.proto"):
        _Received().add(files)
