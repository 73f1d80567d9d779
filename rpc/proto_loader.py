"""``rpc.protos()``: a .proto file loaded at run time, as the modules codegen would write.

Why: a script or an example should run from a checkout without a code
generation step and without ``PYTHONPATH``. ``rpc.protos("helloworld/helloworld.proto")``
compiles the file with grpcio-tools' protoc (the ``h2rpc[codegen]`` extra),
builds its message classes the way protoc's ``_pb2.py`` does, and runs the
``_rpc.py`` source ``python -m rpc.codegen`` would write, all in memory.

Loading behaves like importing: the modules are registered in ``sys.modules``
under the names the generated files would have (``helloworld.helloworld_pb2``,
``helloworld.helloworld_rpc``), so other code, pickle and later ``rpc.protos``
calls of files importing this one find them; a module already there (loaded
before, or generated code imported earlier) is reused, never built twice. The
well-known types (``google/protobuf/*.proto``) come from protobuf's own modules.
Each file is compiled once per process; nothing is written to disk.

Type checkers cannot see into modules made at run time: for typed code,
generate the same modules with ``python -m rpc.codegen`` and import them (the
examples show how to have both).
"""

from __future__ import annotations

import importlib
import importlib.util
import linecache
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.descriptor_pb2 import FileDescriptorProto, FileDescriptorSet
from google.protobuf.internal import builder

__all__ = ["Protos", "protos"]

_WELL_KNOWN_PREFIX = "google/protobuf/"
_PROTOC_TIMEOUT = 120.0


class Protos(NamedTuple):
    """The modules of one .proto file: ``messages, services = rpc.protos(...)``."""

    messages: ModuleType
    """What protoc's ``--python_out`` writes (``<name>_pb2``): messages and enums."""
    services: ModuleType
    """What ``python -m rpc.codegen`` writes (``<name>_rpc``): ``<Service>Methods``,
    ``<Service>Servicer`` and ``<Service>Stub``; an empty module if the file has
    no services."""


_lock = threading.Lock()
_loaded: dict[tuple[str, tuple[str, ...]], Protos] = {}


def protos(
    path: str | os.PathLike[str], *, include: Sequence[str | os.PathLike[str]] | None = None
) -> Protos:
    """Compile ``path`` and return its messages and services modules (cached per process).

    ``path`` is the name the file is imported by in other .proto files
    (``"helloworld/helloworld.proto"``), looked up in the ``include``
    directories, as protoc's ``-I``; by default those are the directories of
    ``sys.path``, as for Python imports. The files it imports are loaded too.

    Raises ImportError when grpcio-tools is not installed (``pip install
    'h2rpc[codegen]'``), and when protoc cannot compile the file (its message
    is in the error) or the file's names clash with ones already loaded.
    """
    if include is None:  # sys.path also holds zip files and directories that are gone
        include = [entry for entry in sys.path if Path(entry or ".").is_dir()]
    directories = tuple(str(Path(directory or ".").resolve()) for directory in include)
    key = (os.fspath(path), directories)
    with _lock:
        loaded = _loaded.get(key)
        if loaded is None:
            loaded = _loaded[key] = _load(os.fspath(path), directories)
        return loaded


def _load(path: str, directories: tuple[str, ...]) -> Protos:
    files = _compile(path, directories)
    pool = descriptor_pool.Default()
    for proto in files:
        _messages_module(proto, pool)
    target = files[-1]  # protoc lists the requested file after everything it imports
    return Protos(sys.modules[_messages_name(target.name)], _services_module(target, files))


def _compile(path: str, directories: tuple[str, ...]) -> list[FileDescriptorProto]:
    """The file and everything it imports, dependencies first, as protoc parsed them."""
    tools = importlib.util.find_spec("grpc_tools")
    if tools is None or not tools.submodule_search_locations:
        raise ImportError(
            f"rpc.protos({path!r}) needs protoc from grpcio-tools: pip install 'h2rpc[codegen]'"
        )
    well_known = Path(next(iter(tools.submodule_search_locations))) / "_proto"
    with tempfile.TemporaryDirectory(prefix="h2rpc-protos-") as tmp:
        descriptor_set = Path(tmp) / "set.pb"
        command = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            *(f"-I{directory}" for directory in directories),
            f"-I{well_known}",
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={descriptor_set}",
            path,
        ]
        # In an empty directory, so that ``path`` names the file in ``directories``
        # (protoc would take a file of that name in the working directory first).
        result = subprocess.run(
            command,
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
            timeout=_PROTOC_TIMEOUT,
        )
        if result.returncode != 0:
            where = ", ".join(directories) or "(no directory)"
            raise ImportError(
                f"rpc.protos: protoc cannot compile {path} (looked up in {where}):\n"
                f"{(result.stderr or result.stdout).strip()}"
            )
        return list(FileDescriptorSet.FromString(descriptor_set.read_bytes()).file)


def _messages_name(proto_file: str) -> str:
    from rpc.codegen.generator import pb2_module

    return pb2_module(proto_file)


def _messages_module(proto: FileDescriptorProto, pool: descriptor_pool.DescriptorPool) -> None:
    """Make ``<name>_pb2`` importable, as protoc's generated file would be."""
    name = _messages_name(proto.name)
    if name in sys.modules:
        return
    if proto.name.startswith(_WELL_KNOWN_PREFIX):
        importlib.import_module(name)  # protobuf ships these
        return
    module = ModuleType(name, f"Messages of {proto.name}, loaded by rpc.protos().")
    descriptor = module.__dict__["DESCRIPTOR"] = _add_file(proto, pool)
    builder.BuildMessageAndEnumDescriptors(descriptor, module.__dict__)
    builder.BuildTopDescriptorsAndMessages(descriptor, name, module.__dict__)
    _register(module)


def _add_file(proto: FileDescriptorProto, pool: descriptor_pool.DescriptorPool) -> FileDescriptor:
    try:
        return pool.FindFileByName(proto.name)
    except KeyError:
        pass
    bare = FileDescriptorProto()
    bare.CopyFrom(proto)
    bare.ClearField("source_code_info")
    try:
        return pool.AddSerializedFile(bare.SerializeToString())
    except (TypeError, ValueError) as exc:  # a symbol defined by another file already
        raise ImportError(f"rpc.protos: {proto.name} cannot be loaded: {exc}") from exc


def _services_module(proto: FileDescriptorProto, files: list[FileDescriptorProto]) -> ModuleType:
    from rpc.codegen.generator import generate, rpc_module_path

    name = rpc_module_path(proto.name)[: -len(".py")].replace("/", ".")
    if name in sys.modules:
        return sys.modules[name]
    source = generate(proto, files)
    if source is None:
        return ModuleType(name, f"{proto.name} defines no services.")
    filename = f"<rpc.protos: {name}>"
    # So that tracebacks through the generated code show its lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    module = ModuleType(name)
    module.__file__ = filename
    _register(module)
    try:
        exec(compile(source, filename, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _register(module: ModuleType) -> None:
    """Put ``module`` in ``sys.modules``, with its parent packages (empty ones if missing)."""
    name = module.__name__
    sys.modules[name] = module
    child = module
    while "." in name:
        name, _, attribute = name.rpartition(".")
        parent = sys.modules.get(name)
        created = parent is None
        if parent is None:
            parent = ModuleType(name, "A package of modules loaded by rpc.protos().")
            parent.__dict__["__path__"] = []  # a package, so "import a.b" works
            sys.modules[name] = parent
        setattr(parent, attribute, child)
        if not created:
            return
        child = parent
