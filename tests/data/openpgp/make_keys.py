"""Make the OpenPGP keys tests/test_openpgp.py reads, and what gpg and Sequoia say of each.

Run by hand, not by the tests (the keys are kept so the tests need neither tool): it needs ``gpg``
(GnuPG 2.2 or later) on PATH and ``pysequoia`` (``pip install pysequoia``) importable:

    python tests/data/openpgp/make_keys.py

Every key is a throwaway made for these tests, secret keys without a passphrase, as Omni issues
service-account keys. ``expected.json`` holds each key's version, creation, expiry, first user ID
and fingerprint as the tool that made it reads them: gpg's ``--with-colons`` listing for gpg's
keys, Sequoia's ``Cert`` for Sequoia's.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
UID = "runbook <runbook@serviceaccount.omni.sidero.dev>"


def gpg_keys(out: dict) -> None:
    with tempfile.TemporaryDirectory() as home:
        os.chmod(home, 0o700)
        base = ["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]

        def run(*args: str) -> str:
            return subprocess.run([*base, *args], check=True, capture_output=True, text=True, timeout=60).stdout

        def fpr(uid: str) -> str:
            colons = run("--with-colons", "--list-keys", uid)
            return next(line.split(":")[9] for line in colons.splitlines() if line.startswith("fpr:"))

        def keep(name: str, uid: str, secret: bool) -> None:
            armored = run("--armor", "--export-secret-keys" if secret else "--export", uid)
            (HERE / name).write_text(armored)
            colons = run("--with-colons", "--list-keys", uid).splitlines()
            pub = next(line.split(":") for line in colons if line.startswith("pub:"))
            uids = [line.split(":")[9] for line in colons if line.startswith("uid:")]
            out[name] = {"by": "gpg", "version": 4, "created": int(pub[5]), "expires": int(pub[6]) if pub[6] else None,
                         "user_id": uids[0], "fingerprint": fpr(uid).lower()}

        try:
            # what Omni issues: an Ed25519 signing key with an expiry, exported with its secret
            run("--quick-gen-key", UID, "ed25519", "sign", "3d")
            keep("gpg-ed25519-3d.sec.asc", UID, secret=True)
            # RSA, never expires: old-format packet headers with two-octet lengths
            run("--quick-gen-key", "forever <forever@example.org>", "rsa2048", "sign", "never")
            keep("gpg-rsa2048-never.pub.asc", "forever@example.org", secret=False)
            # the expiry moved later: a newer self-signature replaces the first
            run("--quick-gen-key", "moved <moved@example.org>", "ed25519", "sign", "1y")
            run("--quick-set-expire", fpr("moved@example.org"), "30d")
            keep("gpg-expiry-changed.pub.asc", "moved@example.org", secret=False)
            # another key certified the user ID after the self-signature: not the key's own word on expiry
            run("--quick-gen-key", "friend <friend@example.org>", "ed25519", "sign", "never")
            run("--quick-gen-key", "vouched <vouched@example.org>", "ed25519", "sign", "90d")
            run("--local-user", fpr("friend@example.org"), "--quick-sign-key", fpr("vouched@example.org"))
            keep("gpg-third-party-certified.pub.asc", "vouched@example.org", secret=False)
        finally:
            subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], capture_output=True, timeout=30)


def sequoia_keys(out: dict) -> None:
    import pysequoia
    from pysequoia.packet import PacketPile

    def keep(name: str, tsk, secret: bool) -> None:
        cert = tsk.extract_certificate()
        armored = str(tsk) if secret else str(cert)
        (HERE / name).write_text(armored)
        first = next(iter(PacketPile.from_bytes(armored.encode())))
        expires = cert.expiration
        out[name] = {"by": "sequoia", "version": 6 if "v6" in name else 4,
                     "created": int(first.key_created.timestamp()),
                     "expires": int(expires.timestamp()) if expires else None,
                     "user_id": str(cert.user_ids[0]) if cert.user_ids else "", "fingerprint": cert.fingerprint.lower()}

    keep("sequoia-v6-ed25519-1y.sec.asc",
         pysequoia.Tsk.generate(UID, profile=pysequoia.Profile.RFC9580, validity_seconds=365 * 86400), secret=True)
    keep("sequoia-v6-never.pub.asc", pysequoia.Tsk.generate(UID, profile=pysequoia.Profile.RFC9580), secret=False)
    keep("sequoia-v4-ed25519-90d.sec.asc",
         pysequoia.Tsk.generate(UID, profile=pysequoia.Profile.RFC4880, validity_seconds=90 * 86400), secret=True)


if __name__ == "__main__":
    expected: dict = {}
    gpg_keys(expected)
    sequoia_keys(expected)
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(json.dumps(expected, indent=1, sort_keys=True))
