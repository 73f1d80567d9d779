"""Descriptors as proto-like text, for ``h2rpc describe`` (in the manner of grpcurl's).

Rendered from the descriptor protos (``CopyToProto``), whose fields (labels,
``proto3_optional``, ``map_entry``) read the same in every protobuf release.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)

from .schema import Symbol

FieldProto = descriptor_pb2.FieldDescriptorProto

_SCALAR_NAMES = {
    FieldProto.TYPE_DOUBLE: "double",
    FieldProto.TYPE_FLOAT: "float",
    FieldProto.TYPE_INT64: "int64",
    FieldProto.TYPE_UINT64: "uint64",
    FieldProto.TYPE_INT32: "int32",
    FieldProto.TYPE_FIXED64: "fixed64",
    FieldProto.TYPE_FIXED32: "fixed32",
    FieldProto.TYPE_BOOL: "bool",
    FieldProto.TYPE_STRING: "string",
    FieldProto.TYPE_BYTES: "bytes",
    FieldProto.TYPE_UINT32: "uint32",
    FieldProto.TYPE_SFIXED32: "sfixed32",
    FieldProto.TYPE_SFIXED64: "sfixed64",
    FieldProto.TYPE_SINT32: "sint32",
    FieldProto.TYPE_SINT64: "sint64",
}

INDENT = "  "


def describe(symbol: Symbol) -> str:
    """``NAME is a KIND:`` and its definition, as ``h2rpc describe`` prints it."""
    if isinstance(symbol, ServiceDescriptor):
        return f"{symbol.full_name} is a service:\n{render_service(symbol)}"
    if isinstance(symbol, MethodDescriptor):
        return f"{symbol.full_name} is a method:\n{render_method(symbol)}"
    if isinstance(symbol, Descriptor):
        return f"{symbol.full_name} is a message:\n{render_message(symbol)}"
    return f"{symbol.full_name} is an enum:\n{render_enum(symbol)}"


def render_service(service: ServiceDescriptor) -> str:
    lines = [f"service {service.name} {{"]
    lines.extend(INDENT + render_method(method) for method in service.methods)
    lines.append("}")
    return "\n".join(lines)


def render_method(method: MethodDescriptor) -> str:
    proto = descriptor_pb2.MethodDescriptorProto()
    method.CopyToProto(proto)
    request = ("stream " if proto.client_streaming else "") + proto.input_type
    response = ("stream " if proto.server_streaming else "") + proto.output_type
    return f"rpc {method.name} ( {request} ) returns ( {response} );"


def render_message(message: Descriptor) -> str:
    proto = descriptor_pb2.DescriptorProto()
    message.CopyToProto(proto)
    return "\n".join(_message_lines(proto, message.full_name, ""))


def render_enum(enum: EnumDescriptor) -> str:
    proto = descriptor_pb2.EnumDescriptorProto()
    enum.CopyToProto(proto)
    return "\n".join(_enum_lines(proto, ""))


def _enum_lines(proto: descriptor_pb2.EnumDescriptorProto, indent: str) -> list[str]:
    lines = [f"{indent}enum {proto.name} {{"]
    lines.extend(f"{indent}{INDENT}{value.name} = {value.number};" for value in proto.value)
    lines.append(f"{indent}}}")
    return lines


def _message_lines(proto: descriptor_pb2.DescriptorProto, full_name: str, indent: str) -> list[str]:
    inner = indent + INDENT
    maps = {
        f".{full_name}.{nested.name}": nested
        for nested in proto.nested_type
        if nested.options.map_entry
    }
    lines = [f"{indent}message {proto.name} {{"]
    real_oneofs = {
        field.oneof_index
        for field in proto.field
        if field.HasField("oneof_index") and not field.proto3_optional
    }
    done_oneofs: set[int] = set()
    for field in proto.field:
        index = field.oneof_index if field.HasField("oneof_index") else None
        if index is not None and index in real_oneofs:
            if index not in done_oneofs:
                done_oneofs.add(index)
                lines.append(f"{inner}oneof {proto.oneof_decl[index].name} {{")
                lines.extend(
                    f"{inner}{INDENT}{_field(member, maps)}"
                    for member in proto.field
                    if member.HasField("oneof_index") and member.oneof_index == index
                )
                lines.append(f"{inner}}}")
            continue
        lines.append(f"{inner}{_field(field, maps)}")
    for nested in proto.nested_type:
        if not nested.options.map_entry:
            lines.extend(_message_lines(nested, f"{full_name}.{nested.name}", inner))
    for enum in proto.enum_type:
        lines.extend(_enum_lines(enum, inner))
    lines.append(f"{indent}}}")
    return lines


def _field(field: FieldProto, maps: dict[str, descriptor_pb2.DescriptorProto]) -> str:
    entry = maps.get(field.type_name)
    if entry is not None:
        key, value = entry.field
        kind = f"map<{_type_name(key)}, {_type_name(value)}>"
    else:
        kind = _type_name(field)
        if field.label == FieldProto.LABEL_REPEATED:
            kind = f"repeated {kind}"
        elif field.proto3_optional:
            kind = f"optional {kind}"
        elif field.label == FieldProto.LABEL_REQUIRED:
            kind = f"required {kind}"
    return f"{kind} {field.name} = {field.number};"


def _type_name(field: FieldProto) -> str:
    return _SCALAR_NAMES.get(field.type) or field.type_name
