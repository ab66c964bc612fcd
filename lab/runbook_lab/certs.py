"""Certificates for the lab twin: one CA that signs every server certificate.

The twin's site file trusts ``ca.pem``; a server that should look *untrusted* gets a certificate
from a second, unrelated :class:`CA`, and an *expired* one gets a certificate whose validity ended
yesterday. Keys are EC P-256 and are written owner-only (0600).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost")
CA_CERT = "ca.pem"
CA_KEY = "ca.key"


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write a private key readable by its owner only, whatever the umask."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(pem)


def _san(hosts: list[str] | tuple[str, ...]) -> x509.SubjectAlternativeName:
    """IP addresses as iPAddress entries, anything else as a dNSName."""
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            entry = x509.DNSName(host)
        if entry not in names:
            names.append(entry)
    return x509.SubjectAlternativeName(names)


@dataclass
class CA:
    """A certificate authority kept in ``directory`` (``ca.pem`` and ``ca.key``)."""

    directory: Path
    name: str
    _cert: x509.Certificate = field(repr=False)
    _key: ec.EllipticCurvePrivateKey = field(repr=False)

    @property
    def cert_path(self) -> Path:
        """The CA certificate (PEM) that clients trust."""
        return self.directory / CA_CERT

    @property
    def key_path(self) -> Path:
        return self.directory / CA_KEY

    @classmethod
    def create(cls, directory: Path, name: str = "runbook lab CA", *, days: int = 365) -> "CA":
        """Make a new CA in ``directory`` (created if needed), overwriting any CA already there."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.timezone.utc)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        (directory / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(directory / CA_KEY, key)
        return cls(directory, name, cert, key)

    @classmethod
    def load(cls, directory: Path) -> "CA":
        """The CA that :meth:`create` left in ``directory``."""
        directory = Path(directory)
        cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{directory / CA_KEY}: not an EC private key")
        name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return cls(directory, str(name), cert, key)

    def issue(self, name: str, hosts: list[str] | tuple[str, ...] = DEFAULT_HOSTS, *, days: int = 30,
              expired: bool = False) -> tuple[Path, Path]:
        """Sign a server certificate for ``hosts``; returns the paths of ``<name>.crt`` and ``<name>.key``.

        ``expired`` backdates it so that its validity ended a day ago (it is otherwise well formed).
        """
        if not name or "/" in name or name in ("ca",):
            raise ValueError(f"invalid certificate name {name!r}")
        if not hosts:
            raise ValueError("a server certificate needs at least one host")
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        if expired:
            not_before, not_after = now - dt.timedelta(days=days + 1), now - dt.timedelta(days=1)
        else:
            not_before, not_after = now - dt.timedelta(hours=1), now + dt.timedelta(days=days)
        ca_ski = self._cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(_san(hosts), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        cert_path, key_path = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        return cert_path, key_path
