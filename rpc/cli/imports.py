"""Imports a reflected file should declare but does not: found from the types it uses.

grpc-js's reflection service (``@grpc/reflection``) serves the files that
``@grpc/proto-loader`` rebuilt, one per package, and those carry no
``dependency`` list (grpc/grpc-node#2595): the service works out which files a
file needs and sends them along, but the file itself names none, so a
descriptor pool refuses it (``couldn't resolve name 'google.protobuf.Timestamp'``).
The files that define the types a file references are its imports: this module
finds them among the files received, so such a file can be added after all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from google.protobuf import descriptor_pb2

FileProto = descriptor_pb2.FileDescriptorProto
DescriptorProto = descriptor_pb2.DescriptorProto


def missing_imports(file: FileProto, others: Mapping[str, FileProto]) -> list[str]:
    """Names of the files in ``others`` defining types ``file`` uses and does not import."""
    owners = {
        symbol: name
        for name, other in others.items()
        if name != file.name
        for symbol in _defined_symbols(other)
    }
    own = set(_defined_symbols(file))
    found: list[str] = []
    for reference, scope in _references(file):
        owner = _resolve(reference, scope, own, owners)
        if owner is not None and owner not in file.dependency and owner not in found:
            found.append(owner)
    return found


def _defined_symbols(file: FileProto) -> Iterator[str]:
    prefix = f"{file.package}." if file.package else ""
    for message in file.message_type:
        yield from _message_symbols(message, prefix)
    for enum in file.enum_type:
        yield prefix + enum.name


def _message_symbols(message: DescriptorProto, prefix: str) -> Iterator[str]:
    name = prefix + message.name
    yield name
    for nested in message.nested_type:
        yield from _message_symbols(nested, f"{name}.")
    for enum in message.enum_type:
        yield f"{name}.{enum.name}"


def _references(file: FileProto) -> Iterator[tuple[str, str]]:
    """Each type name ``file`` refers to, with the scope it is looked up from."""
    package = file.package
    for message in file.message_type:
        yield from _message_references(message, f"{package}.{message.name}".lstrip("."))
    for extension in file.extension:
        yield from _field_references(extension, package)
    for service in file.service:
        for method in service.method:
            yield method.input_type, package
            yield method.output_type, package


def _message_references(message: DescriptorProto, name: str) -> Iterator[tuple[str, str]]:
    for field in (*message.field, *message.extension):
        yield from _field_references(field, name)
    for nested in message.nested_type:
        yield from _message_references(nested, f"{name}.{nested.name}")


def _field_references(
    field: descriptor_pb2.FieldDescriptorProto, scope: str
) -> Iterator[tuple[str, str]]:
    if field.type_name:
        yield field.type_name, scope
    if field.extendee:
        yield field.extendee, scope


def _resolve(reference: str, scope: str, own: set[str], owners: Mapping[str, str]) -> str | None:
    """The file defining ``reference`` (protobuf's scoping: innermost scope first), or
    None if the file defines it itself or no file given does."""
    if reference.startswith("."):
        candidates = [reference[1:]]
    else:
        parts = scope.split(".") if scope else []
        candidates = [".".join([*parts[:i], reference]) for i in range(len(parts), -1, -1)]
    for candidate in candidates:
        if candidate in own:
            return None
        if candidate in owners:
            return owners[candidate]
    return None
