"""The OpenPGP key reader (runbook_lib.openpgp) against real keys and keys built packet by packet.

Real keys: the ones gpg and Sequoia made (tests/data/openpgp, by make_keys.py there), read as their
makers read them (expected.json), and, when gpg is installed, a key gpg makes now. Built keys: v4
and v6 keys signed with Ed25519 (``cryptography``), laid out as RFC 9580 says, in every packet
header format, to try what real keys seldom show: several self-signatures, a signature that expires
before the key, a certification by another key, subkeys, and what is not a key at all. The builder
was checked once against Sequoia (pysequoia 0.1.35): it accepts the built keys' signatures and reads
the same fingerprints and expiries (except where a self-signature expires before the key: Sequoia's
``Cert.expiration`` names the key's own expiry, while the key stops being usable with its signature).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from runbook_lib.openpgp import dearmor, packets, read_key

DATA = Path(__file__).resolve().parent / "data" / "openpgp"
EXPECTED = json.loads((DATA / "expected.json").read_text())
CREATED = 1_790_000_000
DAY = 86400
UID = b"runbook <runbook@serviceaccount.omni.sidero.dev>"


# ----------------------------------------------------------------------------- real keys


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reads_what_the_keys_maker_reads(name):
    want = EXPECTED[name]
    key = read_key((DATA / name).read_text())
    assert (key.version, key.created, key.expires, key.user_id, key.fingerprint) == (
        want["version"], want["created"], want["expires"], want["user_id"], want["fingerprint"])


def test_the_real_keys_cover_both_versions_both_kinds_and_both_header_formats():
    versions, tags, formats = set(), set(), set()
    for name in EXPECTED:
        data = dearmor((DATA / name).read_text())
        tag, body = next(packets(data))
        versions.add(body[0])
        tags.add(tag)
        formats.add("new" if data[0] & 0x40 else "old")
    assert versions == {4, 6} and tags == {5, 6} and formats == {"new", "old"}


def test_a_certification_by_another_key_does_not_hide_the_expiry():
    """gpg says the key expires in 90 days; the newer certification by "friend" carries no expiry."""
    key = read_key((DATA / "gpg-third-party-certified.pub.asc").read_text())
    assert key.expires == key.created + 90 * DAY


@pytest.fixture(scope="module")
def gpg(tmp_path_factory):
    if not shutil.which("gpg"):
        pytest.skip("gpg is not installed")
    home = tmp_path_factory.mktemp("gnupg")
    os.chmod(home, 0o700)
    base = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]

    def run(*args: str) -> str:
        return subprocess.run([*base, *args], check=True, capture_output=True, text=True, timeout=30).stdout

    yield run
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, timeout=30)


@pytest.mark.parametrize("expiry", ["3d", "never"])
def test_agrees_with_the_gpg_installed_here(gpg, expiry):
    uid = f"{expiry} <{expiry}@serviceaccount.omni.sidero.dev>"
    gpg("--quick-gen-key", uid, "ed25519", "sign", expiry)
    armored = gpg("--armor", "--export-secret-keys", uid)
    pub = next(line.split(":") for line in gpg("--with-colons", "--list-keys", uid).splitlines()
               if line.startswith("pub:"))
    key = read_key(armored)
    assert key.created == int(pub[5]) and key.expires == (int(pub[6]) if pub[6] else None)
    assert key.user_id == uid and key.version == 4


# ------------------------------------------------------------------ keys built packet by packet


def header(tag: int, length: int, fmt: str) -> bytes:
    """A packet header (RFC 9580 4.2): new format with a 1-, 2- or 5-octet length, or old format
    with a 1-, 2- or 4-octet length or none (indeterminate)."""
    if fmt == "new1":
        assert length < 192
        return bytes([0xC0 | tag, length])
    if fmt == "new2":
        assert 192 <= length < 8384
        return bytes([0xC0 | tag, ((length - 192) >> 8) + 192, (length - 192) & 0xFF])
    if fmt == "new5":
        return bytes([0xC0 | tag, 255]) + length.to_bytes(4, "big")
    kind = {"old1": 0, "old2": 1, "old4": 2, "old-indeterminate": 3}[fmt]
    size = {0: 1, 1: 2, 2: 4, 3: 0}[kind]
    return bytes([0x80 | tag << 2 | kind]) + (length.to_bytes(size, "big") if size else b"")


def packet(tag: int, body: bytes, fmt: str = "new5") -> bytes:
    return header(tag, len(body), fmt) + body


def subpacket(kind: int, value: bytes, length_octets: int = 1) -> bytes:
    size = len(value) + 1
    if length_octets == 1:
        assert size < 192
        head = bytes([size])
    elif length_octets == 2:
        assert 192 <= size < 16320
        head = bytes([((size - 192) >> 8) + 192, (size - 192) & 0xFF])
    else:
        head = b"\xff" + size.to_bytes(4, "big")
    return head + bytes([kind]) + value


class Key:
    """An Ed25519 primary key (algorithm 27) of version 4 or 6, able to sign its certifications."""

    def __init__(self, version: int = 4, created: int = CREATED):
        self.version, self.created = version, created
        self.secret = Ed25519PrivateKey.generate()
        raw = self.secret.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        count = b"" if version == 4 else len(raw).to_bytes(4, "big")
        self.body = bytes([version]) + created.to_bytes(4, "big") + bytes([27]) + count + raw
        if version == 4:
            self.fingerprint = hashlib.sha1(b"\x99" + len(self.body).to_bytes(2, "big") + self.body).digest()
            self.key_id = self.fingerprint[-8:]
        else:
            self.fingerprint = hashlib.sha256(b"\x9b" + len(self.body).to_bytes(4, "big") + self.body).digest()
            self.key_id = self.fingerprint[:8]

    def secret_body(self) -> bytes:
        """The secret-key packet body: the public fields, then unprotected secret material (RFC 9580 5.5.3)."""
        material = self.secret.private_bytes_raw()
        if self.version == 4:
            return self.body + b"\x00" + material + (sum(material) % 65536).to_bytes(2, "big")
        return self.body + b"\x00" + material

    def hashed_key(self) -> bytes:
        if self.version == 4:
            return b"\x99" + len(self.body).to_bytes(2, "big") + self.body
        return b"\x9b" + len(self.body).to_bytes(4, "big") + self.body

    def sign(self, target: Key, sig_type: int, created: int, *, uid: bytes | None = UID, key_expires: int | None = None,
             sig_expires: int | None = None, issuer: str = "fingerprint", extra: bytes = b"",
             tail: bytes = b"") -> bytes:
        """A signature packet body by this key over ``target`` (and ``uid``), as RFC 9580 5.2.4 hashes it."""
        hashed = extra + subpacket(2, created.to_bytes(4, "big"))
        if key_expires is not None:
            hashed += subpacket(9, key_expires.to_bytes(4, "big"))
        if sig_expires is not None:
            hashed += subpacket(3, sig_expires.to_bytes(4, "big"))
        unhashed = b""
        if issuer == "fingerprint":
            hashed += subpacket(33, bytes([self.version]) + self.fingerprint)
        elif issuer == "key_id":
            unhashed += subpacket(16, self.key_id)
        hashed += tail
        wide = self.version != 4
        count = (lambda n: n.to_bytes(4 if wide else 2, "big"))  # noqa: E731
        prefix = bytes([self.version, sig_type, 27, 8]) + count(len(hashed)) + hashed
        salt = os.urandom(16) if self.version == 6 else b""
        signed = salt + (self.hashed_key() if sig_type == 0x18 else b"") + target.hashed_key()  # 0x18: subkey binding
        if uid is not None:
            signed += b"\xb4" + len(uid).to_bytes(4, "big") + uid
        signed += prefix + bytes([self.version, 0xFF]) + len(prefix).to_bytes(4, "big")
        digest = hashlib.sha256(signed).digest()
        signature = self.secret.sign(digest)
        tail = digest[:2] + (bytes([len(salt)]) + salt if self.version == 6 else b"") + signature
        return prefix + count(len(unhashed)) + unhashed + tail


def armor(data: bytes, kind: str = "PUBLIC KEY BLOCK", headers: str = "", crc: str | None = "ok",
          newline: str = "\n") -> str:
    b64 = base64.b64encode(data).decode()
    lines = [f"-----BEGIN PGP {kind}-----", *filter(None, headers.splitlines()), ""]
    lines += [b64[i:i + 64] for i in range(0, len(b64), 64)]
    if crc == "ok":
        lines.append("=" + base64.b64encode(crc24(data).to_bytes(3, "big")).decode())
    elif crc == "wrong":
        lines.append("=AAAA")
    lines.append(f"-----END PGP {kind}-----")
    return newline.join(lines) + newline


def crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def simple_key(version: int = 4, fmt: str = "new5", key_expires: int | None = 30 * DAY, secret: bool = False):
    key = Key(version)
    tag = 5 if secret else 6
    data = (packet(tag, key.secret_body() if secret else key.body, fmt) + packet(13, UID, fmt)
            + packet(2, key.sign(key, 0x13, CREATED, key_expires=key_expires), fmt))
    return key, data


FORMATS = ["new1", "new5", "old1", "old2", "old4"]


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_header_format_reads_the_same(version, fmt):
    key, data = simple_key(version, "new5")
    if fmt in ("new1", "old1"):  # one-octet lengths: every packet of this key is shorter than 192 octets
        assert all(len(body) < 192 for _, body in packets(data))
    data = b"".join(packet(tag, body, fmt) for tag, body in packets(data))
    got = read_key(armor(data))
    assert (got.version, got.created, got.expires, got.user_id) == (version, CREATED, CREATED + 30 * DAY, UID.decode())
    assert got.fingerprint == key.fingerprint.hex()


def test_two_octet_new_lengths_and_an_indeterminate_old_length():
    key = Key()
    long_uid = b"runbook " + b"x" * 300 + b" <runbook@serviceaccount.omni.sidero.dev>"
    sig = key.sign(key, 0x13, CREATED, uid=long_uid, key_expires=7 * DAY)
    data = packet(6, key.body, "new1") + packet(13, long_uid, "new2") + header(2, 0, "old-indeterminate") + sig
    got = read_key(armor(data))
    assert got.expires == CREATED + 7 * DAY and got.user_id == long_uid.decode()


@pytest.mark.parametrize("version", [4, 6])
def test_a_secret_key_reads_as_its_public_key(version):
    key, public = simple_key(version)
    secret = packet(5, key.secret_body()) + b"".join(packet(t, b) for t, b in list(packets(public))[1:])
    a, b = read_key(armor(public)), read_key(armor(secret, "PRIVATE KEY BLOCK"))
    assert a == b and a.fingerprint == key.fingerprint.hex()


@pytest.mark.parametrize("length_octets, size", [(1, 10), (2, 200), (5, 200)])
def test_subpacket_lengths_of_every_size(length_octets, size):
    """A notation (subpacket 20) of ``size`` octets before the key's expiry, its length in 1, 2 or 5 octets."""
    key = Key()
    value = b"v" * (size - 12)
    notation = subpacket(20, b"\x80\x00\x00\x00" + (4).to_bytes(2, "big") + len(value).to_bytes(2, "big")
                         + b"name" + value, length_octets)
    data = packet(6, key.body) + packet(13, UID) + packet(2, key.sign(key, 0x13, CREATED, key_expires=DAY,
                                                                       extra=notation))
    assert read_key(armor(data)).expires == CREATED + DAY


def test_the_newest_self_signature_decides_wherever_it_stands():
    key = Key()
    older = key.sign(key, 0x13, CREATED, key_expires=365 * DAY)
    newer = key.sign(key, 0x13, CREATED + 10 * DAY, key_expires=30 * DAY)
    for order in ((older, newer), (newer, older)):
        data = packet(6, key.body) + packet(13, UID) + b"".join(packet(2, s) for s in order)
        assert read_key(armor(data)).expires == CREATED + 30 * DAY


@pytest.mark.parametrize("version", [4, 6])
def test_a_direct_key_signature_counts(version):
    key = Key(version)
    direct = key.sign(key, 0x1F, CREATED + 5, uid=None, key_expires=2 * DAY)
    data = packet(6, key.body) + packet(2, direct) + packet(13, UID) + packet(2, key.sign(key, 0x13, CREATED))
    assert read_key(armor(data)).expires == CREATED + 2 * DAY


def test_a_signature_that_expires_first_bounds_the_key():
    """Without a valid self-signature the key is not usable (go-crypto, which Omni uses, refuses it)."""
    key = Key()
    sig = key.sign(key, 0x13, CREATED + DAY, key_expires=30 * DAY, sig_expires=5 * DAY)
    data = packet(6, key.body) + packet(13, UID) + packet(2, sig)
    assert read_key(armor(data)).expires == CREATED + 6 * DAY


def test_a_key_expiration_of_zero_never_expires():
    _, data = simple_key(key_expires=0)
    assert read_key(armor(data)).expires is None
    _, data = simple_key(key_expires=None)
    assert read_key(armor(data)).expires is None


@pytest.mark.parametrize("issuer", ["fingerprint", "key_id"])
def test_certifications_by_other_keys_are_not_the_keys_word(issuer):
    key, friend = Key(), Key()
    own = key.sign(key, 0x13, CREATED, key_expires=30 * DAY, issuer=issuer)
    theirs = friend.sign(key, 0x10, CREATED + DAY, issuer=issuer)
    data = packet(6, key.body) + packet(13, UID) + packet(2, own) + packet(2, theirs)
    assert read_key(armor(data)).expires == CREATED + 30 * DAY


def test_a_signature_naming_no_issuer_is_taken_as_the_keys_own():
    key = Key()
    data = packet(6, key.body) + packet(13, UID) + packet(2, key.sign(key, 0x13, CREATED, key_expires=DAY,
                                                                       issuer="none"))
    assert read_key(armor(data)).expires == CREATED + DAY


def test_subkeys_and_their_bindings_are_not_the_primary_key():
    key, sub = Key(), Key()
    binding = key.sign(sub, 0x18, CREATED + DAY, uid=None, key_expires=DAY)
    late_uid_sig = key.sign(key, 0x13, CREATED + 2 * DAY, key_expires=2 * DAY)  # after the subkey: about it
    data = (packet(6, key.body) + packet(13, UID) + packet(2, key.sign(key, 0x13, CREATED, key_expires=30 * DAY))
            + packet(14, sub.body) + packet(2, binding) + packet(2, late_uid_sig))
    assert read_key(armor(data)).expires == CREATED + 30 * DAY


def test_a_v6_key_without_a_user_id():
    key = Key(6)
    data = packet(6, key.body) + packet(2, key.sign(key, 0x1F, CREATED, uid=None, key_expires=9 * DAY))
    got = read_key(armor(data))
    assert got.user_id == "" and got.expires == CREATED + 9 * DAY


@pytest.mark.parametrize("variant", ["headers", "no crc", "wrong crc", "crlf", "surrounding text"])
def test_armor_variants(variant):
    _, data = simple_key()
    text = {"headers": lambda: armor(data, headers="Version: GnuPG v2\nComment: a test key"),
            "no crc": lambda: armor(data, crc=None),
            "wrong crc": lambda: armor(data, crc="wrong"),  # RFC 9580 6.1: not a reason to reject
            "crlf": lambda: armor(data, newline="\r\n"),
            "surrounding text": lambda: "the key:\n\n" + armor(data) + "\nthanks\n"}[variant]()
    assert read_key(text).expires == CREATED + 30 * DAY


def test_the_crc_helper_matches_gpgs_armor():
    armored = (DATA / "gpg-rsa2048-never.pub.asc").read_text()
    crc_line = next(line for line in armored.splitlines() if line.startswith("="))
    assert crc_line == "=" + base64.b64encode(crc24(dearmor(armored)).to_bytes(3, "big")).decode()


def broken(what: str) -> str:
    key, data = simple_key()
    return {
        "not armored": lambda: base64.b64encode(data).decode(),
        "no end line": lambda: armor(data).replace("-----END PGP PUBLIC KEY BLOCK-----", ""),
        "bad base64": lambda: armor(data).replace(armor(data).splitlines()[2], "@@@@"),
        "not a packet": lambda: armor(b"\x00" + data),
        "a signature first": lambda: armor(b"".join(packet(t, b) for t, b in list(packets(data))[::-1])),
        "version 3": lambda: armor(packet(6, b"\x03" + key.body[1:]) + data[len(packet(6, key.body)):]),
        "no self-signature": lambda: armor(packet(6, key.body) + packet(13, UID)),
        "cut short": lambda: armor(data[:-10]),
        "header cut short": lambda: armor(data + b"\xc2\xff\x00"),
        "partial length": lambda: armor(data + b"\xc2\xe1" + b"x" * 2),
        "empty": lambda: armor(b""),
    }[what]()


@pytest.mark.parametrize("what, says", [
    ("not armored", "not an ASCII-armored OpenPGP key"),
    ("no end line", "not an ASCII-armored OpenPGP key"),
    ("bad base64", "not valid base64"),
    ("not a packet", "not an OpenPGP packet stream"),
    ("a signature first", "does not start with an OpenPGP key packet"),
    ("version 3", "unsupported OpenPGP key version 3"),
    ("no self-signature", "no self-signature"),
    ("cut short", "cut short"),
    ("header cut short", "header is cut short"),
    ("partial length", "partial-length"),
    ("empty", "does not start with an OpenPGP key packet"),
])
def test_what_is_not_a_readable_key_says_why_without_the_key(what, says):
    text = broken(what)
    with pytest.raises(ValueError, match=says) as err:
        read_key(text)
    body = [line for line in text.splitlines() if line and not line.startswith("-----")]
    assert not any(line in str(err.value) for line in body if len(line) > 8)


@pytest.mark.parametrize("tail", [b"\xc5", b"\xff\x00\x00", b"\x20\x02"], ids=["two-octet", "five-octet", "body"])
def test_a_subpacket_cut_short_ends_the_area_without_an_error(tail):
    """A last subpacket whose length (two-octet, five-octet) or body is cut short is not read; the rest is."""
    key = Key()
    data = packet(6, key.body) + packet(13, UID) + packet(2, key.sign(key, 0x13, CREATED, key_expires=DAY, tail=tail))
    assert read_key(armor(data)).expires == CREATED + DAY
