"""Targets (rpc.client.targets) and their resolution (rpc.client.resolver): pure,
with a fake getaddrinfo where a DNS name is looked up."""

from __future__ import annotations

import socket
from typing import Any

import pytest

import rpc
from rpc.client.resolver import ResolutionError, Resolver
from rpc.client.targets import Address, parse_target

V4 = socket.AF_INET
V6 = socket.AF_INET6


@pytest.mark.parametrize(
    ("target", "port", "name", "name_port", "authority"),
    [
        ("localhost:50051", None, "localhost", 50051, "localhost:50051"),
        ("example.com", 8080, "example.com", 8080, "example.com:8080"),
        ("dns:///example.com:50051", None, "example.com", 50051, "example.com:50051"),
        ("dns:example.com:50051", None, "example.com", 50051, "example.com:50051"),
        ("dns:///example.com", None, "example.com", 443, "example.com:443"),
        ("dns:example.com", None, "example.com", 443, "example.com:443"),
    ],
)
def test_dns_names(
    target: str, port: int | None, name: str, name_port: int, authority: str
) -> None:
    parsed = parse_target(target, port)
    assert (parsed.dns_name, parsed.port, parsed.addresses) == (name, name_port, ())
    assert parsed.authority == authority
    assert parsed.unix is None


@pytest.mark.parametrize(
    ("target", "addresses", "authority"),
    [
        ("127.0.0.1:5000", [Address("127.0.0.1", 5000)], "127.0.0.1:5000"),
        ("[::1]:5000", [Address("::1", 5000)], "[::1]:5000"),
        ("dns:///10.0.0.1:7", [Address("10.0.0.1", 7)], "10.0.0.1:7"),
        (
            "ipv4:127.0.0.1:1,127.0.0.2:2",
            [Address("127.0.0.1", 1), Address("127.0.0.2", 2)],
            "127.0.0.1:1",
        ),
        ("ipv4:10.1.2.3", [Address("10.1.2.3", 443)], "10.1.2.3:443"),
        ("ipv6:[::1]:1,[fe80::2]:2", [Address("::1", 1), Address("fe80::2", 2)], "[::1]:1"),
        ("ipv6:::1", [Address("::1", 443)], "[::1]:443"),
        ("ipv6:[::1]", [Address("::1", 443)], "[::1]:443"),
        ("unix:/run/a.sock", [Address("localhost", 0, "/run/a.sock")], "localhost"),
        ("unix-abstract:name", [Address("localhost", 0, "\0name")], "localhost"),
        ("in-memory:0", [], "in-memory:0"),  # rpc.testing's label: a name, never looked up
    ],
)
def test_fixed_addresses(target: str, addresses: list[Address], authority: str) -> None:
    parsed = parse_target(target)
    assert list(parsed.addresses) == addresses
    assert parsed.authority == authority
    if addresses:
        assert parsed.dns_name is None


@pytest.mark.parametrize(
    ("target", "port", "message"),
    [
        ("dns://8.8.8.8/example.com:53", None, "DNS server in the target is unsupported"),
        ("dns://8.8.8.8", None, "DNS server in the target is unsupported"),
        ("dns:///", None, "no port"),
        ("dns:///example.com:http", None, "not a port"),
        ("dns:///example.com:70000", None, "not a port"),
        ("dns:///a,b:1", None, "no valid host"),
        ("dns:///example.com:1", 2, "takes no port apart"),
        ("ipv4:127.0.0.1:1,", None, "no port"),
        ("ipv4:localhost:1", None, "not an IPv4 address"),
        ("ipv4:[::1]:1", None, "not an IPv4 address"),
        ("ipv6:127.0.0.1:1", None, "not an IPv6 address"),
        ("ipv6:[::1", None, "unclosed"),
        ("ipv6:[::1]x", None, "expected ':port'"),
        ("localhost", None, "dns:///host:port"),
        (":50051", None, "host:port"),
        ("unix:", None, "no socket path"),
    ],
)
def test_malformed_targets_are_value_errors(target: str, port: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_target(target, port)
    with pytest.raises(ValueError, match=message):
        rpc.Channel(target, port)


def test_unknown_policy_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="pick_first, round_robin"):
        rpc.Channel("127.0.0.1:1", load_balancing="random")


def _fake_getaddrinfo(infos: list[tuple[Any, ...]], seen: list[tuple[Any, ...]]) -> Any:
    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        seen.append((host, port, kwargs["type"]))
        return infos

    return getaddrinfo


async def test_dns_resolves_every_address_once_in_order() -> None:
    infos = [
        (V6, socket.SOCK_STREAM, 6, "", ("::1", 50051, 0, 0)),
        (V4, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 50051)),
        (V4, socket.SOCK_STREAM, 6, "", ("10.0.0.1", 50051)),
        (V4, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 50051)),  # once only
    ]
    seen: list[tuple[Any, ...]] = []
    resolver = Resolver(parse_target("dns:///db.local:50051"), _fake_getaddrinfo(infos, seen))
    assert not resolver.is_fixed
    assert await resolver.resolve() == [
        Address("::1", 50051),
        Address("127.0.0.1", 50051),
        Address("10.0.0.1", 50051),
    ]
    assert seen == [("db.local", 50051, socket.SOCK_STREAM)]


async def test_a_name_that_does_not_resolve_is_a_resolution_error() -> None:
    async def fails(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(ResolutionError, match=r"cannot resolve 'nowhere\.invalid'"):
        await Resolver(parse_target("nowhere.invalid:1"), fails).resolve()
    with pytest.raises(ResolutionError, match="no IPv4 or IPv6 address"):
        await Resolver(parse_target("odd:1"), _fake_getaddrinfo([], [])).resolve()


async def test_fixed_targets_resolve_without_lookup() -> None:
    seen: list[tuple[Any, ...]] = []
    target = parse_target("ipv4:127.0.0.1:1,127.0.0.1:2")
    resolver = Resolver(target, _fake_getaddrinfo([], seen))
    assert resolver.is_fixed
    assert await resolver.resolve() == [Address("127.0.0.1", 1), Address("127.0.0.1", 2)]
    assert seen == []


async def test_localhost_resolves_through_the_system() -> None:
    addresses = await Resolver(parse_target("dns:///localhost:50051")).resolve()
    assert Address("127.0.0.1", 50051) in addresses
    assert len(addresses) == len(set(addresses))


def test_a_connector_channel_never_looks_its_name_up() -> None:
    unresolved = parse_target("in-memory:0").unresolved()
    assert unresolved.dns_name is None
    assert unresolved.addresses == (Address("in-memory", 0),)
    assert unresolved.authority == "in-memory:0"
