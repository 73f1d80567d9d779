"""Connection options shared by every command that talks to a server, and the channel they open.

The server is named by any target :class:`~rpc.Channel` takes: ``HOST:PORT``
or a Unix socket (``unix:PATH``, ``unix:///PATH``, ``unix-abstract:NAME``),
handed to the channel as given. TLS is the default for remote hosts and
plaintext for loopback ones and Unix sockets (as a developer's local server
usually is); ``--tls``/``--plaintext`` decide otherwise. Connecting is done
up front, failing fast: a refused or unverifiable connection is reported as
such (exit status 2), not as the UNAVAILABLE status of whatever call came first.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..client import Channel
from ..client.connectivity import ConnectivityState
from ..client.targets import Target, parse_target
from ..protocol.metadata import Metadata
from ..protocol.status import RpcError
from .errors import CliError, ExitStatus, invalid

DEFAULT_CONNECT_TIMEOUT = 10.0


def add_address_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "address",
        metavar="TARGET",
        help="the server: HOST:PORT ([::1]:PORT for IPv6), unix:PATH, unix:///PATH "
        "or unix-abstract:NAME",
    )


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    mode = group.add_mutually_exclusive_group()
    mode.add_argument(
        "--plaintext",
        action="store_true",
        help="HTTP/2 without TLS (the default for localhost, 127.0.0.0/8, ::1 and Unix sockets)",
    )
    mode.add_argument(
        "--tls", action="store_true", help="TLS with ALPN h2 (the default for other hosts)"
    )
    group.add_argument("--cacert", metavar="FILE", help="CA certificates to verify the server with")
    group.add_argument("--cert", metavar="FILE", help="client certificate (PEM) for mutual TLS")
    group.add_argument("--key", metavar="FILE", help="private key of --cert (if not in it)")
    group.add_argument(
        "--authority",
        metavar="NAME",
        help="the :authority of each call, and the name the server certificate must have",
    )
    group.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="SECONDS",
        help=f"give up connecting after this long (default {DEFAULT_CONNECT_TIMEOUT:g})",
    )
    group.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'KEY: VALUE'",
        help="metadata sent with every call (repeatable; base64 values for keys ending in -bin)",
    )


def add_deadline_argument(parser: argparse.ArgumentParser, default: float | None = None) -> None:
    shown = "none" if default is None else f"{default:g}"
    parser.add_argument(
        "--deadline",
        type=_seconds,
        default=default,
        metavar="SECONDS",
        help=f"deadline of each call (default {shown})",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"needs a positive number of seconds: {text!r}")
    return value


def parse_metadata(headers: list[str]) -> Metadata:
    """``-H 'key: value'`` options as metadata; base64 is decoded for ``-bin`` keys."""
    metadata = Metadata()
    for header in headers:
        key, sep, value = header.partition(":")
        key, value = key.strip().lower(), value.strip()
        if not sep or not key:
            raise invalid(f"-H needs 'KEY: VALUE', not {header!r}")
        try:
            if key.endswith("-bin"):
                metadata.add(key, _decode_base64(value))
            else:
                metadata.add(key, value)
        except (ValueError, TypeError) as exc:
            raise invalid(f"-H {header!r}: {exc}") from None
    return metadata


def _decode_base64(value: str) -> bytes:
    padded = value + "=" * (-len(value) % 4)
    try:
        return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except binascii.Error:
        raise ValueError(f"not base64: {value!r}") from None


def parse_address(address: str) -> Target:
    """The target named on the command line (what ``Channel(address)`` will connect to)."""
    try:
        target = parse_target(address)
    except ValueError as exc:
        raise invalid(f"the server address: {exc}") from None
    ports = [target.port] if target.dns_name is not None else [a.port for a in target.addresses]
    if target.unix is None and not (ports and all(0 < port < 65536 for port in ports)):
        raise invalid(f"the server address must be HOST:PORT or unix:PATH, not {address!r}")
    return target


def host_of(target: Target) -> str:
    """The host a TCP target names: its DNS name, or its first address."""
    if target.dns_name is not None:
        return target.dns_name
    return target.addresses[0].host


def is_local(target: Target) -> bool:
    """A Unix socket or loopback hosts only: where plaintext is the default."""
    if target.unix is not None:
        return True
    if target.dns_name is not None:
        return is_loopback(target.dns_name)
    return all(is_loopback(address.host) for address in target.addresses)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_context(args: argparse.Namespace, host: str) -> ssl.SSLContext | None:
    """The client's TLS context, or None for plaintext, from the connection options."""
    wants_certificates = args.cacert or args.cert or args.key
    if args.plaintext:
        if wants_certificates:
            raise invalid("--cacert, --cert and --key need TLS, not --plaintext")
        return None
    if not (args.tls or wants_certificates or not is_loopback(host)):
        return None
    if args.key and not args.cert:
        raise invalid("--key needs --cert")
    try:
        context = ssl.create_default_context(cafile=args.cacert)
        if args.cert:
            context.load_cert_chain(args.cert, args.key)
    except (OSError, ssl.SSLError) as exc:
        raise invalid(f"cannot load the TLS files: {exc}") from None
    return context


def _authority_host(authority: str) -> str:
    """The host part of an ``:authority`` (which may carry a port)."""
    host, sep, port = authority.rpartition(":")
    if sep and host and port.isdigit():
        return host.strip("[]")
    return authority.strip("[]")


@asynccontextmanager
async def open_channel(args: argparse.Namespace) -> AsyncIterator[Channel]:
    """A channel to ``args.address``, connected (or CliError(CONNECTION_FAILED)); closed after."""
    target = parse_address(args.address)
    context = tls_context(args, "localhost" if is_local(target) else host_of(target))
    server_hostname = None
    if context is not None and args.authority:
        server_hostname = _authority_host(args.authority)
    channel = Channel(
        args.address,
        ssl=context,
        server_hostname=server_hostname,
        authority=args.authority,
        metadata=parse_metadata(args.header) or None,
        connect_timeout=args.connect_timeout,
        user_agent="h2rpc-cli",
    )
    try:
        await _connect(channel, args.address, args.connect_timeout)
        yield channel
    finally:
        await channel.close()


async def _connect(channel: Channel, address: str, timeout: float) -> None:
    try:
        await asyncio.wait_for(_first_connection(channel), timeout)
    except asyncio.TimeoutError:
        raise CliError(
            ExitStatus.CONNECTION_FAILED, f"cannot connect to {address} within {timeout:g}s"
        ) from None


async def _first_connection(channel: Channel) -> None:
    """Wait for READY; the first failed attempt ends it, with that attempt's reason."""
    while True:
        state = channel.get_state(try_to_connect=True)
        if state is ConnectivityState.READY:
            return
        if state is ConnectivityState.TRANSIENT_FAILURE:
            try:
                await channel.connection_for_call(wait_for_ready=False)
            except RpcError as exc:
                raise CliError(ExitStatus.CONNECTION_FAILED, exc.details) from None
            return
        await channel.wait_for_state_change(state)
