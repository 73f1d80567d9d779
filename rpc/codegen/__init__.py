"""Code generation: a protoc plugin (``protoc-gen-h2rpc``) and ``python -m rpc.codegen``."""
