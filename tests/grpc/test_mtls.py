"""Mutual TLS: servers that require client certificates, clients that present them.

Both directions against grpcio; what a handler learns of the client
(``auth_context()``, ``peer_identities()``) is compared with what grpcio's
handler learns of the same client.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

import rpc
from rpc.server import auth

from ..certificates import CertificateAuthority, KeyPair
from .echo import H2rpcEcho, methods


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: KeyPair
    alice: KeyPair
    """Signed by the CA, with DNS, URI (SPIFFE), email and IP (v4 and v6) names."""
    bob: KeyPair
    """Signed by the CA, with a subject (CN, O) and no subjectAltName."""
    mallory: KeyPair
    """Signed by another CA."""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ours = CertificateAuthority(tmp_path_factory.mktemp("ca"))
    rogue = CertificateAuthority(tmp_path_factory.mktemp("rogue"), "rogue CA")
    return Pki(
        ca=ours.root.cert,
        server=ours.issue("localhost", "DNS:localhost", "IP:127.0.0.1"),
        alice=ours.issue(
            "alice",
            "DNS:alice.example",
            "URI:spiffe://example.org/alice",
            "email:alice@example.org",
            "IP:10.0.0.1",
            "IP:2001:db8::1",
        ),
        bob=ours.issue("bob", organization="Acme, Inc."),
        mallory=rogue.issue("mallory", "DNS:alice.example"),
    )


class AuthRecorder(H2rpcEcho):
    """Echo, noting what each unary call's context says about the client."""

    def __init__(self, pb2: ModuleType) -> None:
        super().__init__(pb2)
        self.seen: list[tuple[Any, ...]] = []

    async def unary(self, request: Any, context: rpc.ServerContext) -> Any:
        self.seen.append(
            (context.auth_context(), context.peer_identities(), context.peer_identity_key())
        )
        return await super().unary(request, context)


def grpcio_recorder(pb2: ModuleType, pb2_grpc: ModuleType) -> Any:
    class Recorder(pb2_grpc.EchoServicer):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self.seen: list[tuple[Any, ...]] = []

        async def Unary(self, request: Any, context: Any) -> Any:
            self.seen.append(
                (context.auth_context(), context.peer_identities(), context.peer_identity_key())
            )
            return pb2.EchoResponse(message=request.message)

    return Recorder()


def _grpcio_credentials(pki: Pki, client: KeyPair | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        pki.ca.read_bytes(),
        client.key.read_bytes() if client else None,
        client.cert.read_bytes() if client else None,
    )


async def _grpcio_call(port: int, pb2: ModuleType, pb2_grpc: ModuleType, creds: Any) -> str:
    async with grpc.aio.secure_channel(f"localhost:{port}", creds) as channel:
        stub = pb2_grpc.EchoStub(channel)
        return str((await stub.Unary(pb2.EchoRequest(message="hi"), timeout=10)).message)


async def _our_call(port: int, pb2: ModuleType, context: ssl.SSLContext) -> str:
    async with rpc.Channel("localhost", port, ssl=context) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        return str((await unary(pb2.EchoRequest(message="hi"), timeout=10)).message)


async def _start_ours(pki: Pki, pb2: ModuleType, **options: Any) -> tuple[rpc.Server, int, Any]:
    recorder = AuthRecorder(pb2)
    server = rpc.Server([recorder])
    context = rpc.ssl_server_context(pki.server.cert, pki.server.key, client_ca=pki.ca, **options)
    return server, await server.start("127.0.0.1", 0, ssl=context), recorder


async def _start_grpcio(pki: Pki, pb2: ModuleType, pb2_grpc: ModuleType) -> tuple[Any, int, Any]:
    recorder = grpcio_recorder(pb2, pb2_grpc)
    server = grpc.aio.server()
    pb2_grpc.add_EchoServicer_to_server(recorder, server)
    credentials = grpc.ssl_server_credentials(
        [(pki.server.key.read_bytes(), pki.server.cert.read_bytes())],
        root_certificates=pki.ca.read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    return server, port, recorder


_NOT_FROM_SSL = {"ssl_requested_server_name", "ssl_negotiated_key_exchange_group"}
"""grpc's properties that :mod:`ssl` cannot tell (see rpc.server.auth)."""


@pytest.mark.parametrize("client", ["alice", "bob"])
async def test_auth_context_as_grpcio_reports_it(
    pki: Pki, echo_modules: tuple[ModuleType, ModuleType], client: str
) -> None:
    """The same grpcio client, to our server and to grpcio's: the same auth context."""
    pb2, pb2_grpc = echo_modules
    pair = getattr(pki, client)
    ours, our_port, our_recorder = await _start_ours(pki, pb2)
    theirs, their_port, their_recorder = await _start_grpcio(pki, pb2, pb2_grpc)
    try:
        creds = _grpcio_credentials(pki, pair)
        assert await _grpcio_call(our_port, pb2, pb2_grpc, creds) == "hi"
        assert await _grpcio_call(their_port, pb2, pb2_grpc, creds) == "hi"
    finally:
        await ours.stop()
        await theirs.stop(0)
    (our_context, our_identities, our_key), = our_recorder.seen
    (their_context, their_identities, their_key), = their_recorder.seen
    expected = {k: v for k, v in their_context.items() if k not in _NOT_FROM_SSL}
    assert our_context == expected
    assert (our_identities, our_key) == (their_identities, their_key)
    if client == "alice":
        assert our_key == "x509_subject_alternative_name"
        assert our_identities == [
            b"alice.example",
            b"spiffe://example.org/alice",
            b"alice@example.org",
            b"10.0.0.1",
            b"2001:db8::1",
        ]
        assert our_context["peer_spiffe_id"] == [b"spiffe://example.org/alice"]
    else:
        assert (our_key, our_identities) == ("x509_common_name", [b"bob"])
        assert our_context["x509_subject"] == [b"O=Acme\\, Inc.,CN=bob"]


async def test_our_server_rejects_bad_clients_and_keeps_serving(
    pki: Pki, echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    pb2, pb2_grpc = echo_modules
    server, port, recorder = await _start_ours(pki, pb2)
    try:
        for client in (pki.mallory, None):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await _grpcio_call(port, pb2, pb2_grpc, _grpcio_credentials(pki, client))
            assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
        for client in (pki.mallory, None):
            context = rpc.ssl_channel_context(
                pki.ca, cert=client.cert if client else None, key=client.key if client else None
            )
            with pytest.raises(rpc.RpcError) as raised_ours:
                await _our_call(port, pb2, context)
            assert raised_ours.value.code is rpc.StatusCode.UNAVAILABLE
            assert "certificate" in raised_ours.value.details.lower()
        # Still serving the clients it trusts, with both stacks.
        good = rpc.ssl_channel_context(pki.ca, cert=pki.alice.cert, key=pki.alice.key)
        assert await _our_call(port, pb2, good) == "hi"
        creds = _grpcio_credentials(pki, pki.alice)
        assert await _grpcio_call(port, pb2, pb2_grpc, creds) == "hi"
    finally:
        await server.stop()
    assert [identities[0] for _, identities, _ in recorder.seen] == [b"alice.example"] * 2


async def test_our_channel_presents_its_certificate_to_grpcio(
    pki: Pki, echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    pb2, pb2_grpc = echo_modules
    server, port, recorder = await _start_grpcio(pki, pb2, pb2_grpc)
    try:
        good = rpc.ssl_channel_context(pki.ca, cert=pki.alice.cert, key=pki.alice.key)
        assert await _our_call(port, pb2, good) == "hi"
        for client in (pki.mallory, None):
            context = rpc.ssl_channel_context(
                pki.ca, cert=client.cert if client else None, key=client.key if client else None
            )
            with pytest.raises(rpc.RpcError) as raised:
                await _our_call(port, pb2, context)
            assert raised.value.code is rpc.StatusCode.UNAVAILABLE
            assert "cannot connect to localhost" in raised.value.details
        assert await _our_call(port, pb2, good) == "hi"
    finally:
        await server.stop(0)
    assert [key for _, _, key in recorder.seen] == ["x509_subject_alternative_name"] * 2


async def test_h2rpc_on_both_sides(pki: Pki, echo_modules: tuple[ModuleType, ModuleType]) -> None:
    pb2, _ = echo_modules
    server, port, recorder = await _start_ours(pki, pb2)
    try:
        bob = rpc.ssl_channel_context(pki.ca, cert=pki.bob.cert, key=pki.bob.key)
        assert await _our_call(port, pb2, bob) == "hi"
    finally:
        await server.stop()
    (context, identities, key), = recorder.seen
    assert (identities, key) == ([b"bob"], "x509_common_name")
    assert context["transport_security_type"] == [b"ssl"]
    assert context["x509_pem_cert"] == [
        ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(pki.bob.cert.read_text())).encode()
    ]


async def test_optional_client_certificate(
    pki: Pki, echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    """``require_client_cert=False``: clients without one are served too, as anonymous."""
    pb2, _ = echo_modules
    server, port, recorder = await _start_ours(pki, pb2, require_client_cert=False)
    try:
        assert await _our_call(port, pb2, rpc.ssl_channel_context(pki.ca)) == "hi"
        alice = rpc.ssl_channel_context(pki.ca, cert=pki.alice.cert, key=pki.alice.key)
        assert await _our_call(port, pb2, alice) == "hi"
        rogue = rpc.ssl_channel_context(pki.ca, cert=pki.mallory.cert, key=pki.mallory.key)
        with pytest.raises(rpc.RpcError) as raised:  # presented, so verified
            await _our_call(port, pb2, rogue)
        assert raised.value.code is rpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop()
    (anonymous, none, no_key), (_, identities, _) = recorder.seen
    assert (none, no_key) == (None, None)
    assert "x509_common_name" not in anonymous
    assert anonymous["transport_security_type"] == [b"ssl"]
    assert identities is not None and identities[0] == b"alice.example"


async def test_plaintext_auth_context_is_grpcs_insecure_one(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    recorder = AuthRecorder(pb2)
    server = rpc.Server([recorder])
    port = await server.start("127.0.0.1", 0)
    async with rpc.Channel("127.0.0.1", port) as channel:
        await channel.unary_unary(methods(pb2)["Unary"])(pb2.EchoRequest(), timeout=10)
    await server.stop()
    assert recorder.seen == [
        (
            {"transport_security_type": [b"insecure"], "security_level": [b"TSI_SECURITY_NONE"]},
            None,
            None,
        )
    ]


def test_context_helpers_refuse_half_configurations(pki: Pki) -> None:
    with pytest.raises(ValueError, match="client_ca"):
        rpc.ssl_server_context(pki.server.cert, pki.server.key, require_client_cert=False)
    with pytest.raises(ValueError, match="cert="):
        rpc.ssl_channel_context(pki.ca, key=pki.alice.key)
    server = rpc.ssl_server_context(pki.server.cert, pki.server.key, client_ca=pki.ca)
    assert server.verify_mode is ssl.CERT_REQUIRED
    assert rpc.ssl_server_context(pki.server.cert, pki.server.key).verify_mode is ssl.CERT_NONE


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (((("commonName", "a"),),), "CN=a"),
        (((("countryName", "FR"),), (("commonName", "x,y"),)), "CN=x\\,y,C=FR"),
        (((("commonName", " lead#"),),), "CN=\\ lead#"),
        (((("commonName", "#hash"),),), "CN=\\#hash"),
        (((("organizationName", "O"), ("commonName", "multi")),), "O=O+CN=multi"),
    ],
)
def test_subject_in_rfc2253_form(subject: Any, expected: str) -> None:
    assert auth._rfc2253(subject) == expected
