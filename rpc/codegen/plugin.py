"""The protoc plugin: CodeGeneratorRequest on stdin, CodeGeneratorResponse on stdout."""

from __future__ import annotations

import sys

from google.protobuf.compiler import plugin_pb2

from .generator import generate, rpc_module_path


def run(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse()
    response.supported_features = plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    wanted = set(request.file_to_generate)
    try:
        for proto in request.proto_file:
            if proto.name not in wanted:
                continue
            source = generate(proto, request.proto_file)
            if source is not None:
                out = response.file.add()
                out.name = rpc_module_path(proto.name)
                out.content = source
    except Exception as exc:  # reported by protoc as this plugin's error
        response.error = f"protoc-gen-h2rpc: {type(exc).__name__}: {exc}"
    return response


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(run(request).SerializeToString())


if __name__ == "__main__":
    main()
