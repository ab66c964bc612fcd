"""The twin CA: its certificates verify with Python's ssl, and the untrusted/expired ones do not."""

from __future__ import annotations

import ipaddress
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from runbook_lab.certs import CA


def handshake(cert, key, cafile, hostname: str = "127.0.0.1") -> None:
    """A TLS handshake in memory between a server using cert/key and a client trusting cafile."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cafile))
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        pending = False
        for end in (client, server):
            try:
                end.do_handshake()
            except ssl.SSLWantReadError:
                pending = True
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if not pending:
            return
    raise AssertionError("the handshake did not finish")


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return CA.create(tmp_path_factory.mktemp("pki"))


def test_ca_files_and_key_permissions(ca):
    assert ca.cert_path.name == "ca.pem" and ca.cert_path.exists()
    assert stat.S_IMODE(ca.key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(ca.cert_path.read_bytes())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True


def test_issued_certificate_verifies_for_ip_and_name(ca):
    cert, key = ca.issue("server")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    handshake(cert, key, ca.cert_path, "127.0.0.1")
    handshake(cert, key, ca.cert_path, "localhost")


def test_subject_alternative_names_and_server_auth(ca):
    cert_path, _ = ca.issue("sans", ["127.0.0.1", "omni.lab", "::1"])
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
    assert san.get_values_for_type(x509.DNSName) == ["omni.lab"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_wrong_hostname_fails(ca):
    cert, key = ca.issue("only-loopback", ["127.0.0.1"])
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch|doesn't match"):
        handshake(cert, key, ca.cert_path, "omni.example.com")


def test_certificate_from_another_ca_is_untrusted(ca, tmp_path):
    other = CA.create(tmp_path / "other", name="someone else")
    cert, key = other.issue("stranger")
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        handshake(cert, key, ca.cert_path)
    assert err.value.verify_message == "unable to get local issuer certificate"
    handshake(cert, key, other.cert_path)  # the certificate itself is fine


def test_expired_certificate_fails(ca):
    cert, key = ca.issue("old", expired=True)
    with pytest.raises(ssl.SSLCertVerificationError) as err:
        handshake(cert, key, ca.cert_path)
    assert err.value.verify_message == "certificate has expired"


def test_loaded_ca_signs_for_the_same_trust_anchor(ca):
    again = CA.load(ca.directory)
    assert again.name == "runbook lab CA"
    cert, key = again.issue("from-loaded")
    handshake(cert, key, ca.cert_path)


def test_bad_names_are_refused(ca):
    with pytest.raises(ValueError):
        ca.issue("ca")  # would overwrite the CA itself
    with pytest.raises(ValueError):
        ca.issue("../escape")
