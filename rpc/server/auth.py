"""The authentication context of a call, in grpc's shape (``context.auth_context()``).

grpc describes a connection's security as a dict of property name to a list
of byte strings; handlers written for grpc.aio read it so. Built here from
what :mod:`ssl` knows of the TLS connection (``ssl_object.getpeercert()``)::

    transport_security_type         [b"ssl"] (or [b"insecure"] without TLS)
    x509_subject                    [b"O=Acme,CN=alice"]        (RFC 2253 order)
    x509_common_name                [b"alice"]
    x509_pem_cert                   [b"-----BEGIN CERTIFICATE-----\\n..."]
    x509_subject_alternative_name   every DNS, URI, email and IP name, in order
    peer_dns, peer_uri, peer_email, peer_ip   the same, by kind
    security_level                  [b"TSI_PRIVACY_AND_INTEGRITY"]
    ssl_session_reused              [b"true"] or [b"false"]
    ssl_tls_version                 [b"TLSv1.3"]
    peer_spiffe_id                  the URI name, when it is the only one and a spiffe:// one

The certificate entries are present only when the client presented one and it
was verified (a server context with ``verify_mode`` CERT_REQUIRED or
CERT_OPTIONAL: see :func:`rpc.core.tls.server_context`). grpc's
``ssl_requested_server_name`` and key exchange group are not available from
:mod:`ssl` and are left out.
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Any

AuthContext = dict[str, list[bytes]]

INSECURE: AuthContext = {
    "transport_security_type": [b"insecure"],
    "security_level": [b"TSI_SECURITY_NONE"],
}

_SHORT_NAMES = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "streetAddress": "STREET",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "domainComponent": "DC",
    "userId": "UID",
}

_SAN_KINDS = {"DNS": "peer_dns", "URI": "peer_uri", "email": "peer_email", "IP Address": "peer_ip"}
"""The subjectAltName kinds grpc reports (getpeercert()'s names), with their own property."""


def auth_context(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> AuthContext:
    """The auth context of a connection with this ``ssl_object`` (None: plaintext)."""
    if ssl_object is None:
        return {name: list(values) for name, values in INSECURE.items()}
    context: AuthContext = {"transport_security_type": [b"ssl"]}
    certificate: dict[str, Any] = ssl_object.getpeercert() or {}
    if certificate:
        context.update(_certificate_properties(certificate, ssl_object))
    context["security_level"] = [b"TSI_PRIVACY_AND_INTEGRITY"]
    context["ssl_session_reused"] = [b"true" if ssl_object.session_reused else b"false"]
    version = ssl_object.version()
    if version:
        context["ssl_tls_version"] = [version.encode()]
    uris = context.get("peer_uri", [])
    if len(uris) == 1 and uris[0].lower().startswith(b"spiffe://"):
        context["peer_spiffe_id"] = list(uris)
    return context


def peer_identity_key(context: AuthContext) -> str | None:
    """The property naming the peer: its subjectAltNames, else its common name (as grpc)."""
    for key in ("x509_subject_alternative_name", "x509_common_name"):
        if context.get(key):
            return key
    return None


def peer_identities(context: AuthContext) -> list[bytes] | None:
    """The peer's identities (the values under :func:`peer_identity_key`), or None."""
    key = peer_identity_key(context)
    return list(context[key]) if key is not None else None


def _certificate_properties(
    certificate: dict[str, Any], ssl_object: ssl.SSLObject | ssl.SSLSocket
) -> AuthContext:
    properties: AuthContext = {}
    subject: tuple[tuple[tuple[str, str], ...], ...] = certificate.get("subject", ())
    properties["x509_subject"] = [_rfc2253(subject).encode()]
    common_names = [value.encode() for rdn in subject for key, value in rdn if key == "commonName"]
    if common_names:
        properties["x509_common_name"] = common_names
    der = ssl_object.getpeercert(binary_form=True)
    if der:
        properties["x509_pem_cert"] = [ssl.DER_cert_to_PEM_cert(der).encode()]
    by_kind: AuthContext = {}
    alternative_names: list[bytes] = []
    for kind, value in certificate.get("subjectAltName", ()):
        prop = _SAN_KINDS.get(kind)
        if prop is None:
            continue
        text = _normal_ip(value) if kind == "IP Address" else value
        alternative_names.append(text.encode())
        by_kind.setdefault(prop, []).append(text.encode())
    if alternative_names:
        properties["x509_subject_alternative_name"] = alternative_names
        properties.update(by_kind)
    return properties


def _rfc2253(subject: tuple[tuple[tuple[str, str], ...], ...]) -> str:
    """The subject as RFC 2253 writes it: last RDN first, short attribute names."""
    return ",".join(
        "+".join(f"{_SHORT_NAMES.get(name, name)}={_escape(value)}" for name, value in rdn)
        for rdn in reversed(subject)
    )


def _escape(value: str) -> str:
    escaped = "".join("\\" + char if char in ',+"\\<>;' else char for char in value)
    if escaped[:1] in ("#", " "):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and not escaped.endswith("\\ "):
        escaped = escaped[:-1] + "\\ "
    return escaped


def _normal_ip(value: str) -> str:
    """An IP name as grpc writes it (``inet_ntop``): getpeercert() spells IPv6 out in full."""
    try:
        return ipaddress.ip_address(value.strip()).compressed
    except ValueError:
        return value.strip()
