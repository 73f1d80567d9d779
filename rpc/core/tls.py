"""TLS contexts for HTTP/2, including mutual TLS: what gRPC's credentials make.

Plain :class:`ssl.SSLContext` objects work everywhere a context is taken;
these two functions only spare the usual steps and fix the choices gRPC
makes: ALPN ``h2``, certificate verification on, and (on the server) client
certificates required as soon as a client CA is given, as
``grpc.ssl_server_credentials(..., require_client_auth=True)`` does.
"""

from __future__ import annotations

import os
import ssl

from .connection import alpn_context

PathLike = str | os.PathLike[str]


def server_context(
    cert: PathLike,
    key: PathLike | None = None,
    *,
    client_ca: PathLike | None = None,
    require_client_cert: bool = True,
) -> ssl.SSLContext:
    """A server context presenting ``cert`` (PEM; ``key`` if not in the same file).

    With ``client_ca`` (PEM file of the CAs that sign client certificates),
    clients must present a certificate signed by one of them, or the
    handshake fails; ``require_client_cert=False`` asks for one but lets
    clients without one in (a certificate that is presented is still
    verified). Handlers see the client's certificate through
    :meth:`rpc.ServerContext.auth_context`.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    elif require_client_cert is not True:
        raise ValueError("require_client_cert needs client_ca: the CAs to verify clients with")
    return alpn_context(context)


def client_context(
    ca: PathLike | None = None,
    *,
    cert: PathLike | None = None,
    key: PathLike | None = None,
) -> ssl.SSLContext:
    """A client context verifying servers against ``ca`` (PEM; None: the system's CAs).

    ``cert`` (and ``key``, if not in the same file) is the client certificate
    presented to servers that ask for one (mutual TLS).
    """
    context = ssl.create_default_context(cafile=ca)
    if cert is not None:
        context.load_cert_chain(cert, key)
    elif key is not None:
        raise ValueError("a client key needs its certificate (cert=)")
    return alpn_context(context)
