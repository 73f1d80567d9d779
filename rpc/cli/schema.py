"""Where the CLI's descriptors come from: server reflection, or .proto files compiled here.

Either way the result is a private descriptor pool that holds the files a
command needs (each after its dependencies), from which messages are made
dynamically: the CLI needs no generated code for the server it talks to.
"""

from __future__ import annotations

import abc
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)

from ..protocol.status import StatusCode
from .errors import invalid
from .imports import missing_imports
from .reflection import ReflectionClient, ReflectionError

Symbol = ServiceDescriptor | MethodDescriptor | Descriptor | EnumDescriptor


class Schema(abc.ABC):
    """Services and types by full name, loaded on demand into :attr:`pool`."""

    def __init__(self) -> None:
        self.pool = descriptor_pool.DescriptorPool()
        self._added: set[str] = set()

    @abc.abstractmethod
    async def service_names(self) -> list[str]:
        """Every service the schema knows, by full name."""

    @abc.abstractmethod
    async def _load(self, symbol: str) -> bool:
        """Bring the file defining ``symbol`` into the pool; False if there is none."""

    async def close(self) -> None:  # noqa: B027 (most schemas hold nothing open)
        """Let go of what the schema holds open (the reflection call)."""

    async def find(self, name: str) -> Symbol:
        """The service, method, message or enum with this full name (a leading dot is fine).

        A method may be named ``pkg.Service.Method`` or ``pkg.Service/Method``.
        """
        name = name.lstrip(".")
        if "/" in name:
            service, _, method = name.rpartition("/")
            name = f"{service}.{method}"
        found = self._lookup(name)
        if found is None and await self._load(name):
            found = self._lookup(name)
        if found is None:
            parent = name.rpartition(".")[0]
            if parent and await self._load(parent):
                found = self._lookup(name)
        if found is None:
            raise invalid(f"symbol not found: {name}")
        return found

    async def find_method(self, name: str) -> MethodDescriptor:
        found = await self.find(name)
        if not isinstance(found, MethodDescriptor):
            raise invalid(f"{name} is not a method: name one as package.Service/Method")
        return found

    def _lookup(self, name: str) -> Symbol | None:
        finders = (
            self.pool.FindServiceByName,
            self.pool.FindMethodByName,
            self.pool.FindMessageTypeByName,
            self.pool.FindEnumTypeByName,
        )
        for finder in finders:
            try:
                found: Symbol = finder(name)
            except KeyError:
                continue
            return found
        return None

    def _add_files(self, serialized: Iterable[bytes], fetch: dict[str, bytes]) -> None:
        """Add files to the pool, each after its dependencies (from ``fetch`` or known ones)."""
        names = []
        for data in serialized:
            name = descriptor_pb2.FileDescriptorProto.FromString(data).name
            fetch.setdefault(name, data)
            names.append(name)
        for name in names:
            self._add_file(name, fetch, ())

    def _add_file(self, name: str, files: dict[str, bytes], importers: tuple[str, ...]) -> None:
        if name in self._added:
            return
        if name in importers:
            raise invalid(f"import cycle: {' -> '.join((*importers, name))}")
        data = files.get(name)
        if data is None:
            data = _well_known_file(name)
        proto = descriptor_pb2.FileDescriptorProto.FromString(data)
        for dependency in proto.dependency:
            self._add_file(dependency, files, (*importers, name))
        try:
            self.pool.AddSerializedFile(data)
        except (TypeError, ValueError) as exc:
            if not self._add_with_missing_imports(proto, files, (*importers, name)):
                raise invalid(f"cannot use {name}: {exc}") from None
        self._added.add(name)

    def _add_with_missing_imports(
        self,
        proto: descriptor_pb2.FileDescriptorProto,
        files: dict[str, bytes],
        importers: tuple[str, ...],
    ) -> bool:
        """Add a file that uses types of other files it does not import (as grpc-js's
        reflection serves them: see :mod:`.imports`), importing those; False if none."""
        others = {
            name: descriptor_pb2.FileDescriptorProto.FromString(data)
            for name, data in files.items()
        }
        missing = missing_imports(proto, others)
        if not missing:
            return False
        for dependency in missing:
            self._add_file(dependency, files, importers)
        proto.dependency.extend(missing)
        try:
            self.pool.AddSerializedFile(proto.SerializeToString())
        except (TypeError, ValueError):
            return False
        return True


def _well_known_file(name: str) -> bytes:
    """A file the server did not send, from protobuf's own (the well-known types)."""
    try:
        known = descriptor_pool.Default().FindFileByName(name)
    except KeyError:
        raise invalid(f"missing .proto dependency: {name}") from None
    proto = descriptor_pb2.FileDescriptorProto()
    known.CopyToProto(proto)
    return proto.SerializeToString()


class ReflectedSchema(Schema):
    """Descriptors asked of the server through its reflection service."""

    def __init__(self, client: ReflectionClient) -> None:
        super().__init__()
        self._client = client
        self._received: dict[str, bytes] = {}

    async def service_names(self) -> list[str]:
        return sorted(await self._client.list_services())

    async def _load(self, symbol: str) -> bool:
        try:
            files = await self._client.file_containing_symbol(symbol)
        except ReflectionError as exc:
            if exc.code is StatusCode.NOT_FOUND:
                return False
            raise
        await self._fetch_dependencies(files)
        self._add_files(files, self._received)
        return True

    async def _fetch_dependencies(self, files: list[bytes]) -> None:
        """Ask for the imports the server did not send along (servers may send only the file)."""
        pending = list(files)
        while pending:
            proto = descriptor_pb2.FileDescriptorProto.FromString(pending.pop())
            self._received.setdefault(proto.name, proto.SerializeToString())
            for dependency in proto.dependency:
                if dependency in self._received or dependency in self._added:
                    continue
                try:
                    more = await self._client.file_by_filename(dependency)
                except ReflectionError as exc:
                    if exc.code is not StatusCode.NOT_FOUND:
                        raise
                    continue  # a well-known type the server did not register, perhaps
                for data in more:
                    name = descriptor_pb2.FileDescriptorProto.FromString(data).name
                    if name not in self._received:
                        self._received[name] = data
                        pending.append(data)

    async def close(self) -> None:
        await self._client.close()


class LocalSchema(Schema):
    """Descriptors of .proto files compiled at run time with grpcio-tools' protoc."""

    def __init__(self, protos: Sequence[str], includes: Sequence[str]) -> None:
        super().__init__()
        self._files: dict[str, bytes] = {}
        descriptor_set = compile_protos(protos, includes)
        self._add_files((file.SerializeToString() for file in descriptor_set.file), self._files)

    async def service_names(self) -> list[str]:
        names: list[str] = []
        for name in self._files:
            file = self.pool.FindFileByName(name)
            names.extend(service.full_name for service in file.services_by_name.values())
        return sorted(names)

    async def _load(self, symbol: str) -> bool:
        return False  # everything was loaded up front


def compile_protos(
    protos: Sequence[str], includes: Sequence[str]
) -> descriptor_pb2.FileDescriptorSet:
    """The FileDescriptorSet of ``protos`` and their imports, from protoc (errors: CliError)."""
    try:
        from rpc.codegen.protoc import run_protoc
    except ImportError:
        raise invalid(
            "compiling .proto files needs grpcio-tools: pip install 'h2rpc[codegen]'"
        ) from None
    includes = list(includes) or sorted({str(Path(proto).parent) for proto in protos})
    with tempfile.TemporaryDirectory() as directory:
        output = Path(directory) / "descriptors.pb"
        status = run_protoc(
            includes, [f"--descriptor_set_out={output}", "--include_imports"], protos
        )
        if status != 0:
            raise invalid(f"protoc could not compile {' '.join(protos)} (see above)")
        return descriptor_pb2.FileDescriptorSet.FromString(output.read_bytes())
