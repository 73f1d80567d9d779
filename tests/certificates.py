"""Test certificates made at test time with the ``openssl`` command.

One place for every TLS test: self-signed certificates (:func:`self_signed`),
and a certificate authority that signs server and client certificates
(:class:`CertificateAuthority`) for mutual TLS. Keys are RSA 2048, valid two days.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed to make test certificates")
    subprocess.run([openssl, *args], check=True, capture_output=True)


def self_signed(
    directory: Path, common_name: str, *alt_names: str, ca: bool = False
) -> KeyPair:
    """A self-signed certificate for ``common_name`` with these subjectAltNames
    (``DNS:name`` or ``IP:address``); ``ca``: one that signs others.

    A CA gets a critical keyUsage: Python 3.13's default contexts verify
    strictly (``VERIFY_X509_STRICT``) and refuse a CA without it."""
    pair = KeyPair(directory / f"{common_name}.pem", directory / f"{common_name}.key")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", str(pair.key), "-out", str(pair.cert),
        "-subj", f"/CN={common_name}",
        *(["-addext", "subjectAltName=" + ",".join(alt_names)] if alt_names else []),
        *(
            ["-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
            if ca else []
        ),
    )  # fmt: skip
    return pair


class CertificateAuthority:
    """A self-signed CA that issues leaf certificates (server or client)."""

    def __init__(self, directory: Path, name: str = "h2rpc test CA") -> None:
        self.directory = directory
        self.root = self_signed(directory, name.replace(" ", "-"), ca=True)

    def issue(self, common_name: str, *alt_names: str, organization: str = "") -> KeyPair:
        """A certificate for ``common_name`` signed by this CA (``alt_names`` as in
        :func:`self_signed`); usable for both TLS server and client auth."""
        pair = KeyPair(
            self.directory / f"{common_name}.pem", self.directory / f"{common_name}.key"
        )
        request = self.directory / f"{common_name}.csr"
        extensions = self.directory / f"{common_name}.ext"
        lines = [
            "basicConstraints=CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            "extendedKeyUsage=serverAuth,clientAuth",
            "subjectKeyIdentifier=hash",
            "authorityKeyIdentifier=keyid,issuer",
        ]
        if alt_names:
            lines.append("subjectAltName=" + ",".join(alt_names))
        extensions.write_text("\n".join(lines) + "\n")
        subject = f"/CN={common_name}" + (f"/O={organization}" if organization else "")
        _openssl(
            "req", "-new", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(pair.key), "-out", str(request), "-subj", subject,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", str(request), "-days", "2",
            "-CA", str(self.root.cert), "-CAkey", str(self.root.key), "-CAcreateserial",
            "-extfile", str(extensions), "-out", str(pair.cert),
        )  # fmt: skip
        return pair
