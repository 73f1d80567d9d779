"""Channel targets: what ``Channel(target)`` connects to, in gRPC's naming syntax.

Supported (gRPC's ``doc/naming.md``)::

    host:port, [v6addr]:port      a DNS name (or address literal), resolved like dns:
    dns:host[:port]               every A/AAAA address of host (port 443 if omitted)
    dns:///host[:port]            the same, URI form (a DNS server authority is unsupported)
    ipv4:addr[:port][,addr[:port],...]      a fixed list of IPv4 addresses
    ipv6:[addr][:port][,[addr][:port],...]  a fixed list of IPv6 addresses
    unix:path, unix:/abs/path     a Unix socket file (relative paths allowed)
    unix:///abs/path              the same, URI form (the authority must be empty)
    unix-abstract:name            a Linux abstract socket (no file)

Parsing is pure: :mod:`rpc.client.resolver` turns a DNS name into addresses.
The ``:authority`` a target implies is ``host:port`` for a DNS name (whatever
address it resolves to), the first address of an ``ipv4:``/``ipv6:`` list
(grpc C-core sends the whole list, which is not one host), and ``localhost``
for a Unix socket, as grpc-go and grpc-java send (grpc C-core sends the
escaped path); ``Channel(authority=...)`` overrides it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

DEFAULT_PORT = 443
"""The port of a ``dns:``/``ipv4:``/``ipv6:`` name that gives none, as in gRPC."""


@dataclass(frozen=True, slots=True)
class Address:
    """One place to connect to: ``host``/``port`` over TCP, or a Unix socket ``unix``."""

    host: str
    port: int
    unix: str | None = None
    """The socket path (``\\0name`` for an abstract socket), or None for TCP."""

    def __str__(self) -> str:
        if self.unix is not None:
            return f"unix:{self.unix}"
        return _host_port(self.host, self.port)


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed target: fixed ``addresses``, or a ``dns_name`` to resolve."""

    text: str
    """The target as given, for messages."""
    authority: str
    """The ``:authority`` of its calls unless the channel is given one."""
    addresses: tuple[Address, ...] = ()
    """The addresses of an ``ipv4:``, ``ipv6:`` or ``unix:`` target; empty for DNS."""
    dns_name: str | None = None
    """The host name to resolve (A and AAAA records), or None."""
    port: int = 0
    """The port of every address ``dns_name`` resolves to."""

    @property
    def unix(self) -> str | None:
        """The Unix socket path of a ``unix:``/``unix-abstract:`` target, else None."""
        return self.addresses[0].unix if self.addresses else None

    def unresolved(self) -> Target:
        """The target with its DNS name as its one address, not looked up (a
        :data:`rpc.core.Connector` brings the transport: the name is only a label)."""
        if self.dns_name is None:
            return self
        return Target(self.text, self.authority, (Address(self.dns_name, self.port),))


def parse_target(target: str, port: int | None = None) -> Target:
    """Parse a channel target; raises ValueError for anything it does not name."""
    scheme, sep, rest = target.partition(":")
    if sep and scheme in _SCHEMES:
        if port is not None:
            raise ValueError(f"a {scheme}: target takes no port apart: {target!r}, port {port}")
        return _SCHEMES[scheme](target, rest)
    if port is None:
        host, sep, port_text = target.rpartition(":")
        if not sep or not host or not port_text.isdigit():
            raise ValueError(
                f"target must be 'host:port', 'dns:///host:port', 'ipv4:addr:port,...',"
                f" 'unix:path' or 'unix-abstract:name', not {target!r}"
            )
        return _dns_target(target, host, port_text)
    return _dns_target(f"{target}:{port}", target, str(port))


def _dns(target: str, rest: str) -> Target:
    if rest.startswith("//"):
        dns_server, slash, rest = rest[2:].partition("/")
        if dns_server or not slash:
            raise ValueError(
                f"a DNS server in the target is unsupported (dns:///host:port), not {target!r}"
            )
    host, port_text = _split_host_port(target, rest, default_port=True)
    return _dns_target(target, host, port_text)


def _dns_target(text: str, host: str, port_text: str) -> Target:
    port = _port(text, port_text)
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not name or "/" in name or "," in name:
        raise ValueError(f"the target {text!r} names no valid host")
    authority = _host_port(name, port)
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return Target(text, authority, dns_name=name, port=port)
    return Target(text, authority, (Address(name, port),))  # an address resolves to itself


def _ipv4(target: str, rest: str) -> Target:
    return _address_list(target, rest, ipaddress.IPv4Address)


def _ipv6(target: str, rest: str) -> Target:
    return _address_list(target, rest, ipaddress.IPv6Address)


def _address_list(
    target: str, rest: str, version: type[ipaddress.IPv4Address | ipaddress.IPv6Address]
) -> Target:
    addresses = []
    for item in rest.split(","):
        host, port_text = _split_host_port(target, item, default_port=True)
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            version(host)
        except ValueError:
            raise ValueError(
                f"{host!r} in {target!r} is not an {version.__name__[:4]} address"
            ) from None
        addresses.append(Address(host, _port(target, port_text)))
    return Target(target, str(addresses[0]), tuple(addresses))


def _unix(target: str, path: str) -> Target:
    if path.startswith("//"):
        path = path[2:]
        if not path.startswith("/"):
            raise ValueError(
                f"a unix:// target takes an absolute path (unix:///path), not {target!r}"
            )
    if not path:
        raise ValueError(f"the unix target {target!r} names no socket path")
    if path.startswith("@"):  # a file named so, not rpc.core.unix's abstract notation
        path = "./" + path
    return Target(target, "localhost", (Address("localhost", 0, path),))


def _unix_abstract(target: str, name: str) -> Target:
    if not name:
        raise ValueError(f"the target {target!r} names no abstract socket")
    return Target(target, "localhost", (Address("localhost", 0, "\0" + name),))


_SCHEMES = {
    "dns": _dns,
    "ipv4": _ipv4,
    "ipv6": _ipv6,
    "unix": _unix,
    "unix-abstract": _unix_abstract,
}


def _split_host_port(target: str, text: str, *, default_port: bool) -> tuple[str, str]:
    """``host:port``, ``[v6]:port``, or (``default_port``) a host alone."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"unclosed '[' in {target!r}")
        host, after = text[: end + 1], text[end + 1 :]
        if not after and default_port:
            return host, str(DEFAULT_PORT)
        if not after.startswith(":"):
            raise ValueError(f"expected ':port' after {host!r} in {target!r}")
        return host, after[1:]
    host, sep, port_text = text.rpartition(":")
    if not sep or ":" in host:  # no port, or a bare IPv6 address
        if not default_port or not text:
            raise ValueError(f"no port in {target!r}")
        return text, str(DEFAULT_PORT)
    return host, port_text


def _port(target: str, text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise ValueError(f"{text!r} is not a port (0-65535) in {target!r}")
    return int(text)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
