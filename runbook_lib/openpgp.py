"""When an OpenPGP key was made and when it expires, read from its packets (RFC 4880, RFC 9580).

Omni's service-account keys and the keys a browser login saves are armored OpenPGP secret keys;
:func:`read_key` tells their creation time, expiry and first user ID without ever looking at the
secret material and without verifying anything: it is evidence for a person, not an access decision.

The expiry is what OpenPGP implementations (and Omni's go-api-signature) enforce: the primary key's
creation time plus the key-expiration-time subpacket (type 9) of its newest self-certification (a
user-ID certification or a direct-key signature made by the key itself), or that signature's own
expiry (type 3) if sooner; None for a key that never expires. Version 4 keys (RFC 4880) and version
6 keys (RFC 9580; version 5 of the retired draft is read the same way) are read, with old- and
new-format packet headers, armor headers, and with or without the CRC-24 line (RFC 9580 6.1: it is
not to be relied on, so it is not checked).

Why a reader of our own and not a library:

* PGPy, the pure-Python implementation, is unmaintained: no release since 0.6.0 (2022), no
  RFC 9580 (v6) support, it pins an old ``cryptography`` and does not import on Python 3.13
  (``imghdr`` was removed); its forks (PGPy13, PGPy-dtc) are stop-gaps by their own description.
* python-gnupg drives a ``gpg`` binary and needs a keyring on disk: the secret key would have to be
  imported into a home directory to read two timestamps.
* pysequoia (Sequoia-PGP, maintained, v4 and v6) reads the same facts (``Cert.expiration``), but is
  a 3 MB native wheel per platform and Python version, built on an LGPL library, it parses and
  keeps the secret material, and its answer depends on Sequoia's standard policy (a key whose
  self-signature uses a hash the policy rejects has no answer at all).

Reading two timestamps from public packet fields is ~150 lines with no dependency; it is checked
(tests/test_openpgp.py) against keys gpg and Sequoia made, against their own reading of those keys,
and against keys built packet by packet in every header format.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

__all__ = ["KeyTimes", "read_key", "dearmor", "packets"]

# packet tags (RFC 9580 5)
TAG_SIGNATURE, TAG_SECRET_KEY, TAG_PUBLIC_KEY, TAG_USER_ID = 2, 5, 6, 13
SUBKEY_TAGS = frozenset({7, 14})  # secret and public subkeys: what follows is about them, not the primary
# signature types that say something about the primary key: user-ID certifications and direct-key signatures
CERTIFICATIONS = frozenset({0x10, 0x11, 0x12, 0x13, 0x1F})
# signature subpackets (RFC 9580 5.2.3.7)
SUB_CREATED, SUB_SIG_EXPIRES, SUB_KEY_EXPIRES, SUB_ISSUER_KEY_ID, SUB_ISSUER_FINGERPRINT = 2, 3, 9, 16, 33
KEY_VERSIONS = (4, 5, 6)

# v4 public key material per algorithm (RFC 9580 5.5.5): "m" an MPI, "o" a curve OID, "k" ECDH KDF
# parameters, an int a fixed number of octets
_V4_FIELDS = {1: "mm", 2: "mm", 3: "mm", 16: "mmm", 20: "mmm", 17: "mmmm", 18: "omk", 19: "om", 22: "om",
              25: 32, 26: 56, 27: 32, 28: 57}


@dataclass(frozen=True)
class KeyTimes:
    """What :func:`read_key` tells of a key; times in Unix seconds."""

    version: int
    created: float
    expires: float | None  # None: never
    user_id: str  # the first user ID ("" when there is none, as v6 keys may have)
    fingerprint: str  # hex, "" when the key's algorithm is one this reader does not know


def read_key(armored: str) -> KeyTimes:
    """Creation, expiry and first user ID of an ASCII-armored OpenPGP key (public or secret).

    Raises ValueError, in words that never include the key, when it cannot be read.
    """
    found = list(packets(dearmor(armored)))
    if not found or found[0][0] not in (TAG_SECRET_KEY, TAG_PUBLIC_KEY):
        raise ValueError("it does not start with an OpenPGP key packet")
    body = found[0][1]
    if len(body) < 5 or body[0] not in KEY_VERSIONS:
        raise ValueError(f"unsupported OpenPGP key version {body[0] if body else '?'}")
    version, created = body[0], int.from_bytes(body[1:5], "big")
    fingerprint = _fingerprint(body)
    user_id, best = "", None
    for tag, part in found[1:]:
        if tag in SUBKEY_TAGS:
            break
        if tag == TAG_USER_ID and not user_id:
            user_id = part.decode("utf-8", errors="replace")
        elif tag == TAG_SIGNATURE:
            sig = _signature(part)
            if (sig and sig["type"] in CERTIFICATIONS and _made_by(sig, fingerprint)
                    and (best is None or sig["created"] >= best["created"])):
                best = sig
    if best is None:
        raise ValueError("the key carries no self-signature")
    limits = []
    if best.get("key_expires"):
        limits.append(created + best["key_expires"])
    if best.get("sig_expires"):
        limits.append(best["created"] + best["sig_expires"])
    return KeyTimes(version=version, created=float(created), expires=float(min(limits)) if limits else None,
                    user_id=user_id, fingerprint=fingerprint.hex() if fingerprint else "")


# --------------------------------------------------------------------------------- armor


def dearmor(text: str) -> bytes:
    """The bytes inside the first ASCII-armored block of ``text`` (RFC 9580 6)."""
    lines = [line.strip() for line in text.strip().splitlines()]
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("-----BEGIN PGP"))
        end = next(i for i, line in enumerate(lines) if i > start and line.startswith("-----END PGP"))
    except StopIteration:
        raise ValueError("it is not an ASCII-armored OpenPGP key") from None
    body = lines[start + 1:end]
    if "" in body:  # armor headers end at the first blank line
        body = body[body.index("") + 1:]
    data = "".join(line for line in body if not line.startswith("="))  # "=XXXX" is the CRC-24 line
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("its armor is not valid base64") from None


# ------------------------------------------------------------------------------- packets


def packets(data: bytes):
    """(tag, body) of each OpenPGP packet, old and new header formats (RFC 9580 4.2)."""
    pos = 0
    while pos < len(data):
        head = data[pos]
        if not head & 0x80:
            raise ValueError("it is not an OpenPGP packet stream")
        if head & 0x40:  # new format: six bits of tag, then a one-, two- or five-octet length
            tag = head & 0x3F
            length, pos = _new_length(data, pos + 1)
        else:  # old format: four bits of tag, two bits saying how many length octets follow
            tag, kind = (head >> 2) & 0x0F, head & 0x03
            if kind == 3:  # indeterminate: to the end of the data
                length, pos = len(data) - pos - 1, pos + 1
            else:
                size = 1 << kind
                if pos + 1 + size > len(data):
                    raise ValueError("a packet header is cut short")
                length = int.from_bytes(data[pos + 1:pos + 1 + size], "big")
                pos += 1 + size
        if pos + length > len(data):
            raise ValueError("a packet is cut short")
        yield tag, data[pos:pos + length]
        pos += length


def _new_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise ValueError("a packet header is cut short")
    first = data[pos]
    if first < 192:
        return first, pos + 1
    if first < 224:
        if pos + 1 >= len(data):
            raise ValueError("a packet header is cut short")
        return ((first - 192) << 8) + data[pos + 1] + 192, pos + 2
    if first == 255:
        if pos + 5 > len(data):
            raise ValueError("a packet header is cut short")
        return int.from_bytes(data[pos + 1:pos + 5], "big"), pos + 5
    raise ValueError("partial-length packets do not occur in keys")


# ---------------------------------------------------------------------------- signatures


def _signature(body: bytes) -> dict | None:
    """Type, time subpackets and issuer of a v4/v5/v6 signature (None for older versions)."""
    if len(body) < 6 or body[0] not in KEY_VERSIONS:
        return None
    size_len = 2 if body[0] == 4 else 4  # v5 and v6 count their subpacket areas with four octets
    start = 4 + size_len
    hashed_len = int.from_bytes(body[4:start], "big")
    hashed = body[start:start + hashed_len]
    unhashed_at = start + hashed_len
    unhashed_len = int.from_bytes(body[unhashed_at:unhashed_at + size_len], "big")
    unhashed = body[unhashed_at + size_len:unhashed_at + size_len + unhashed_len]
    sig = {"type": body[1], "created": 0, "issuers": set()}
    for kind, value in _subpackets(hashed):
        if len(value) == 4 and kind in (SUB_CREATED, SUB_KEY_EXPIRES, SUB_SIG_EXPIRES):
            name = {SUB_CREATED: "created", SUB_KEY_EXPIRES: "key_expires", SUB_SIG_EXPIRES: "sig_expires"}[kind]
            sig[name] = int.from_bytes(value, "big")
    for area in (hashed, unhashed):  # the issuer is a hint, in either area (gpg puts the key ID unhashed)
        for kind, value in _subpackets(area):
            if kind == SUB_ISSUER_FINGERPRINT and len(value) > 1:
                sig["issuers"].add(("fingerprint", value[1:]))
            elif kind == SUB_ISSUER_KEY_ID and len(value) == 8:
                sig["issuers"].add(("key_id", value))
    return sig


def _subpackets(area: bytes):
    """(type without the critical bit, value) of each subpacket; stops at one that is cut short."""
    pos = 0
    while pos < len(area):
        first = area[pos]
        if first < 192:
            length, pos = first, pos + 1
        elif first < 255:
            if pos + 1 >= len(area):
                return
            length, pos = ((first - 192) << 8) + area[pos + 1] + 192, pos + 2
        else:
            if pos + 5 > len(area):
                return
            length, pos = int.from_bytes(area[pos + 1:pos + 5], "big"), pos + 5
        if length < 1 or pos + length > len(area):
            return
        yield area[pos] & 0x7F, area[pos + 1:pos + length]
        pos += length


def _made_by(sig: dict, fingerprint: bytes | None) -> bool:
    """Whether the primary key made ``sig``: a signature naming another issuer is someone else's
    certification; one naming none (or of a key whose fingerprint is unknown here) is taken as the key's."""
    if not sig["issuers"] or fingerprint is None:
        return True
    key_id = fingerprint[-8:] if len(fingerprint) == 20 else fingerprint[:8]
    return any(value == (fingerprint if kind == "fingerprint" else key_id) for kind, value in sig["issuers"])


# --------------------------------------------------------------------------- fingerprint


def _fingerprint(body: bytes) -> bytes | None:
    """The primary key's fingerprint (RFC 9580 5.5.4), from its public fields; None when they cannot
    be told apart from the secret ones (an algorithm this reader does not know)."""
    public = _public_part(body)
    if public is None:
        return None
    if body[0] == 4:
        return hashlib.sha1(b"\x99" + len(public).to_bytes(2, "big") + public, usedforsecurity=False).digest()
    prefix = b"\x9b" if body[0] == 6 else b"\x9a"
    return hashlib.sha256(prefix + len(public).to_bytes(4, "big") + public).digest()


def _public_part(body: bytes) -> bytes | None:
    """The public-key fields at the start of a (public or secret) key packet's body."""
    if body[0] != 4:  # v5 and v6 count their public key material: version, time, algorithm, count, material
        if len(body) < 10:
            return None
        end = 10 + int.from_bytes(body[6:10], "big")
        return body[:end] if end <= len(body) else None
    if len(body) < 6:
        return None
    fields, pos = _V4_FIELDS.get(body[5]), 6
    if fields is None:
        return None
    if isinstance(fields, int):
        pos += fields
    else:
        for field in fields:
            if pos >= len(body):
                return None
            if field == "m":  # a two-octet bit count, then the octets
                if pos + 2 > len(body):
                    return None
                pos += 2 + (int.from_bytes(body[pos:pos + 2], "big") + 7) // 8
            else:  # a one-octet length, then the curve OID or the KDF parameters
                pos += 1 + body[pos]
    return body[:pos] if pos <= len(body) else None
