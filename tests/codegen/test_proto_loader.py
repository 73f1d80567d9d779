"""rpc.protos(): .proto files loaded at run time, served and called; its errors."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path
from typing import Any

import pytest

import rpc

# A package no other test loads: what rpc.protos registers stays in this process.
COMMON = """
syntax = "proto3";
package loadertest.common;
message Tag { string name = 1; }
"""
SERVICE = """
syntax = "proto3";
package loadertest.v1;
import "google/protobuf/timestamp.proto";
import "loadertest/common.proto";

// Keeps notes.
service Notes {
  rpc Add (Note) returns (Note);
  rpc Watch (Note) returns (stream Note);
}

message Note {
  string text = 1;
  loadertest.common.Tag tag = 2;
  google.protobuf.Timestamp at = 3;
  map<string, string> labels = 4;
}
"""


@pytest.fixture(scope="module")
def protos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("protos")
    (directory / "loadertest").mkdir()
    (directory / "loadertest" / "common.proto").write_text(COMMON)
    (directory / "loadertest" / "notes.proto").write_text(SERVICE)
    return directory


async def test_loaded_modules_serve_and_call(protos_dir: Path) -> None:
    notes_pb2, notes_rpc = rpc.protos("loadertest/notes.proto", include=[protos_dir])
    common_pb2 = sys.modules["loadertest.common_pb2"]  # its import, loaded with it

    class Notes(notes_rpc.NotesServicer):  # type: ignore[misc, name-defined]
        async def Add(self, request: Any, context: rpc.ServerContext) -> Any:
            return notes_pb2.Note(text=request.text.upper(), tag=common_pb2.Tag(name="added"))

    server = rpc.Server([Notes()])
    await server.start()
    try:
        async with rpc.Channel(f"127.0.0.1:{server.port}") as channel:
            stub = notes_rpc.NotesStub(channel)
            reply = await stub.Add(notes_pb2.Note(text="hi", at={"seconds": 5}), timeout=30)
            assert (reply.text, reply.tag.name) == ("HI", "added")
            # The streaming method left alone answers UNIMPLEMENTED.
            with pytest.raises(rpc.RpcError) as info:
                [note async for note in stub.Watch(notes_pb2.Note(), timeout=30)]
            assert info.value.code is rpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop()
    assert notes_rpc.NotesServicer.__doc__ == "Keeps notes."


def test_modules_are_importable_cached_and_reused(protos_dir: Path) -> None:
    loaded = rpc.protos("loadertest/notes.proto", include=[protos_dir])
    assert rpc.protos("loadertest/notes.proto", include=[protos_dir]) is loaded
    import loadertest.notes_pb2  # type: ignore[import-not-found]
    import loadertest.notes_rpc  # type: ignore[import-not-found]

    assert (loadertest.notes_pb2, loadertest.notes_rpc) == loaded
    # The imported file, asked for itself, is the module already made; it has no services.
    common = rpc.protos("loadertest/common.proto", include=[str(protos_dir)])
    assert common.messages is sys.modules["loadertest.common_pb2"]
    assert not hasattr(common.services, "__all__")
    # Messages are ordinary protobuf classes: pickled by module name, sent as usual.
    note = loaded.messages.Note(text="x", labels={"a": "b"})
    assert pickle.loads(pickle.dumps(note)) == note
    assert type(note).__module__ == "loadertest.notes_pb2"


def test_include_defaults_to_sys_path(protos_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(protos_dir))
    assert rpc.protos("loadertest/common.proto").messages is sys.modules["loadertest.common_pb2"]


def test_protoc_errors_are_import_errors_with_protocs_message(tmp_path: Path) -> None:
    (tmp_path / "bad.proto").write_text('syntax = "proto3";\nmessage M { strin x = 1; }\n')
    with pytest.raises(ImportError, match="strin"):
        rpc.protos("bad.proto", include=[tmp_path])
    with pytest.raises(ImportError, match=r"missing\.proto"):
        rpc.protos("missing.proto", include=[tmp_path])
    assert "bad_pb2" not in sys.modules


def test_a_clash_with_loaded_names_is_an_import_error(tmp_path: Path, protos_dir: Path) -> None:
    rpc.protos("loadertest/common.proto", include=[protos_dir])
    (tmp_path / "clash.proto").write_text(COMMON)  # the same message, from another file
    with pytest.raises(ImportError, match=r"clash\.proto"):
        rpc.protos("clash.proto", include=[tmp_path])


def test_without_grpcio_tools_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "grpc_tools", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'h2rpc\[codegen\]'"):
        rpc.protos("anything.proto", include=[tmp_path])
