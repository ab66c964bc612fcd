"""Evidence for the omnictl runbook: the binary, its configuration and key, one real call, and
the network path to Omni layer by layer.

Four independent groups run in parallel once the endpoint omnictl will use is known:

* **omnictl**: the binary is located (never run when missing), ``omnictl --version`` gives the
  client's version, and ``omnictl get clusters`` is the one real call; a failure is kept as its
  classified kind plus omnictl's own ``Error:`` line.
* **key**: what the credential says about itself, without ever printing it. A service-account key
  (base64 JSON holding an armored OpenPGP key, as Omni issues them) or the key a browser login
  saved (``<context>-<identity>.pgp``) is decoded in memory; its identity, creation and expiry
  come from the OpenPGP self-signature (:func:`pgp_key_facts`). Anything else is "expiry not
  readable": a fact, not a failure.
* **probes**: DNS, then TCP, then TLS plus ``GET /healthz``
  (:func:`runbook_lib.sources.http.probe`), each with a deadline.

The names of what they gather are documented in :mod:`runbook_lib.checks.omnictl`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import yaml

from .. import redact
from .. import site as site_model
from ..calls import CallLog
from ..errors import SourceError
from ..evidence import Evidence
from ..site import Site
from ..sources import http
from ..sources.omni import Omnictl, parse_objects
from . import in_parallel

DEFAULT_CONFIG = "~/.talos/omni/config"
# where omnictl keeps the key a browser (OIDC) login created: <context>-<identity>.pgp
KEY_DIRS = ("$SIDEROV1_KEYS_DIR", "~/.talos/keys", "$XDG_DATA_HOME/omni/keys", "~/.local/share/omni/keys")
TRY_COMMAND = ["get", "clusters", "-o", "json"]  # a read every Omni role may make


@dataclass
class Options:
    probe_timeout: float = 5.0


# ------------------------------------------------------------------------------ entry point


def gather(site: Site, calls: CallLog, options: Options | None = None,
           progress: Callable[[str], None] | None = None) -> Evidence:
    opts = options or Options()
    ev = Evidence()
    spec = site.omni.omnictl
    config = read_config(spec.config, spec.context)
    ev.put("config", config)
    key_ref = spec.service_account_key
    endpoint = site.omni.url if key_ref or not config.get("url") else config["url"]
    ev.put("expected", {"omni_url": site.omni.url, "endpoint": endpoint, "binary": spec.binary,
                        "context": spec.context or config.get("current") or "",
                        "key": key_ref or "", "insecure": spec.insecure_skip_tls_verify,
                        "timeout": spec.timeout})
    omni = Omnictl(site.omni, calls)
    in_parallel(ev, {
        "omnictl": lambda e: _omnictl(e, omni),
        "key": lambda e: e.collect("key", key_facts, key_ref, config),
        "probes": lambda e: _probes(e, endpoint, site, calls, opts.probe_timeout),
    }, progress)
    return ev


# ---------------------------------------------------------------------------------- omnictl


def _omnictl(ev: Evidence, omni: Omnictl) -> None:
    try:
        path = omni.binary()
    except SourceError as exc:
        ev.put("binary", {"configured": omni.options.binary, "path": "", "found": False, "error": exc.reason,
                          "searched": os.environ.get("PATH", "") if os.sep not in omni.options.binary else ""})
        for name in ("client_version", "omnictl"):
            ev.fail(name, f"omnictl was not run: {exc.reason}")
        return
    ev.put("binary", {"configured": omni.options.binary, "path": path, "found": True, "error": "", "searched": ""})
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="omnictl") as pool:
        version = pool.submit(_client_version, omni)
        attempt = pool.submit(try_omnictl, omni)
        ev.collect("client_version", version.result)
        ev.put("omnictl", attempt.result())


def _client_version(omni: Omnictl) -> str:
    """``omnictl --version``: the client's own version (it does not contact Omni)."""
    out = omni.run(["--version"]).stdout.strip()
    return out.rsplit(" ", 1)[-1] if out else ""


def try_omnictl(omni: Omnictl, args: list[str] | None = None) -> dict:
    """Run one read through omnictl: ``{command, ok, kind, detail, line, count}``.

    ``kind`` is ``ok`` or the error family (``auth``, ``permission``, ``unreachable``, ``tls``,
    ``timeout``, ``not_found``, ``command``); ``detail`` refines it from omnictl's line:
    ``version_skew``, ``no_context``, ``proxy`` (a proxy answered gRPC with an HTTP error page).
    """
    args = args or TRY_COMMAND
    command = "omnictl " + " ".join(redact.mask_args([*omni.global_flags(), *args]))
    try:
        result = omni.run(args)
    except SourceError as exc:
        return {"command": command, "ok": False, "kind": exc.kind, "detail": error_detail(exc.reason),
                "line": exc.reason, "count": None}
    try:
        count = len(parse_objects(result.stdout))
    except SourceError:
        count = None
    return {"command": command, "ok": True, "kind": "ok", "detail": "", "line": "", "count": count}


def error_detail(reason: str) -> str:
    """What omnictl's error line says beyond its gRPC code."""
    if "versions do not match" in reason or "is too old" in reason or "is newer than this Omni" in reason:
        return "version_skew"
    if "has not been configured" in reason or "no omnictl context" in reason:
        return "no_context"
    if "unexpected HTTP status code" in reason or "unexpected content-type" in reason:
        return "proxy"
    return ""


# ----------------------------------------------------------------------------------- config


def config_path(configured: str | None) -> tuple[Path, str]:
    """The omniconfig omnictl reads and why: the site's, ``$OMNICONFIG``, or the default."""
    if configured:
        return Path(os.path.expanduser(configured)), "site file (omni.omnictl.config)"
    if os.environ.get("OMNICONFIG"):
        return Path(os.path.expanduser(os.environ["OMNICONFIG"])), "$OMNICONFIG"
    return Path(os.path.expanduser(DEFAULT_CONFIG)), "default"


def read_config(configured: str | None, context: str | None = None) -> dict:
    """The omniconfig's contexts (it holds URLs and identities, no secrets)."""
    path, source = config_path(configured)
    out = {"path": str(path), "source": source, "site_set": bool(configured), "exists": path.is_file(),
           "contexts": [], "current": "", "url": "", "identity": "", "error": ""}
    if not out["exists"]:
        return out
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        out["error"] = f"cannot read it: {getattr(exc, 'strerror', None) or getattr(exc, 'problem', None) or exc}"
        return out
    contexts = doc.get("contexts") if isinstance(doc, dict) else None
    if not isinstance(contexts, dict):
        out["error"] = "it has no 'contexts:' mapping"
        return out
    out["contexts"] = sorted(str(c) for c in contexts)
    out["current"] = context or str(doc.get("context") or "")
    chosen = contexts.get(out["current"])
    if not isinstance(chosen, dict):
        out["error"] = f"context '{out['current']}' is not in the file"
        return out
    out["url"] = str(chosen.get("url") or "")
    auth = chosen.get("auth") or {}
    out["identity"] = str(((auth.get("siderov1") or {}) if isinstance(auth, dict) else {}).get("identity") or "")
    return out


# -------------------------------------------------------------------------------------- key


def key_facts(ref: str | None, config: dict, now: float | None = None) -> dict:
    """What omnictl's credential says about itself: kind, identity, created, expires, days_left.

    With a service-account key (``ref``) the key is resolved (which registers it for redaction)
    and decoded in memory. Without one, the key a browser login saved for the config's context
    and identity is read when it exists. ``readable`` is False when the expiry cannot be read;
    ``note`` then says why, in words that never include the key.
    """
    now = time.time() if now is None else now
    if ref:
        value = site_model.resolve_secret(ref, field="omni.omnictl.service_account_key")
        facts = {"kind": "service account key", "where": ref}
        try:
            name, armored = decode_service_account_key(value)
        except ValueError as exc:
            return {**facts, "readable": False, "identity": "", "note": f"expiry not readable: {exc}"}
        facts["identity"] = name
    else:
        identity, context = config.get("identity"), config.get("current")
        if not (identity and context):
            return {"kind": "none", "where": "", "readable": False, "identity": "",
                    "note": "no service account key in the site file and no login identity in the omniconfig"}
        path = saved_login_key(context, identity)
        facts = {"kind": "saved login key", "identity": identity, "where": str(path or "")}
        if path is None:
            return {**facts, "readable": False,
                    "note": f"no saved login key for {context}/{identity} (omnictl will ask for a browser login)"}
        try:
            armored = path.read_text(encoding="utf-8")
        except OSError as exc:
            return {**facts, "readable": False, "note": f"expiry not readable: cannot read it ({exc.strerror})"}
        redact.register(armored)
    try:
        pgp = pgp_key_facts(armored)
    except ValueError as exc:
        return {**facts, "readable": False, "note": f"expiry not readable: {exc}"}
    expires = pgp["expires"]
    days_left = None if expires is None else round((expires - now) / 86400, 2)
    return {**facts, "readable": True, "user_id": pgp["user_id"], "created": _iso(pgp["created"]),
            "expires": _iso(expires) if expires is not None else "never", "days_left": days_left, "note": ""}


def decode_service_account_key(value: str) -> tuple[str, str]:
    """(identity, armored OpenPGP key) of an Omni service-account key (base64 of JSON)."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
        doc = json.loads(raw)
    except (binascii.Error, ValueError):
        raise ValueError("the key is not base64 JSON (an Omni service account key is)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("pgp_key"), str):
        raise ValueError("the decoded key has no 'pgp_key' field") from None
    redact.register(doc["pgp_key"])
    return str(doc.get("name") or ""), doc["pgp_key"]


def saved_login_key(context: str, identity: str) -> Path | None:
    """The key file a browser login left for ``context``/``identity``, if any."""
    name = f"{context}-{identity}.pgp"
    for d in KEY_DIRS:
        if d.startswith("$XDG_DATA_HOME") and not os.environ.get("XDG_DATA_HOME"):
            continue
        if d.startswith("$SIDEROV1") and not os.environ.get("SIDEROV1_KEYS_DIR"):
            continue
        path = Path(os.path.expanduser(os.path.expandvars(d))) / name
        if path.is_file():
            return path
    return None


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# OpenPGP (RFC 4880 / RFC 9580) packet tags and signature subpackets read here
_TAG_SIGNATURE, _TAG_SECRET_KEY, _TAG_PUBLIC_KEY, _TAG_USER_ID = 2, 5, 6, 13
_SUBKEY_TAGS = {7, 14}
_CERTIFICATIONS = {0x10, 0x11, 0x12, 0x13, 0x1F}  # user-id certifications and direct-key signatures
_SUB_CREATED, _SUB_SIG_EXPIRES, _SUB_KEY_EXPIRES = 2, 3, 9


def pgp_key_facts(armored: str) -> dict:
    """Creation and expiry of an armored OpenPGP key: ``{created, expires, user_id}`` (Unix seconds).

    The expiry is what OpenPGP implementations (and Omni's go-api-signature) enforce: the primary
    key's creation time plus the key-expiration subpacket of its newest self-certification, or
    that signature's own expiry if sooner. ``expires`` is None for a key that never expires.
    Nothing is verified and the secret material is never looked at.
    """
    packets = list(_packets(_dearmor(armored)))
    if not packets or packets[0][0] not in (_TAG_SECRET_KEY, _TAG_PUBLIC_KEY):
        raise ValueError("it does not start with an OpenPGP key packet")
    body = packets[0][1]
    if len(body) < 5 or body[0] not in (4, 5, 6):
        raise ValueError(f"unsupported OpenPGP key version {body[0] if body else '?'}")
    created = struct.unpack(">I", body[1:5])[0]
    user_id, best = "", None
    for tag, body in packets[1:]:
        if tag in _SUBKEY_TAGS:
            break
        if tag == _TAG_USER_ID and not user_id:
            user_id = body.decode("utf-8", errors="replace")
        elif tag == _TAG_SIGNATURE:
            sig = _signature(body)
            if sig and sig["type"] in _CERTIFICATIONS and (best is None or sig["created"] >= best["created"]):
                best = sig
    if best is None:
        raise ValueError("the key carries no self-signature")
    limits = []
    if best.get("key_expires"):
        limits.append(created + best["key_expires"])
    if best.get("sig_expires"):
        limits.append(best["created"] + best["sig_expires"])
    return {"created": float(created), "expires": float(min(limits)) if limits else None, "user_id": user_id}


def _dearmor(text: str) -> bytes:
    lines = [line.strip() for line in text.strip().splitlines()]
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("-----BEGIN PGP"))
        end = next(i for i, line in enumerate(lines) if line.startswith("-----END PGP"))
    except StopIteration:
        raise ValueError("it is not an ASCII-armored OpenPGP key") from None
    body = lines[start + 1:end]
    if "" in body:  # armor headers end at the first blank line
        body = body[body.index("") + 1:]
    data = "".join(line for line in body if not line.startswith("="))
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("its armor is not valid base64") from None


def _packets(data: bytes):
    """(tag, body) of each OpenPGP packet, old and new header formats."""
    pos = 0
    while pos < len(data):
        head = data[pos]
        if not head & 0x80:
            raise ValueError("it is not an OpenPGP packet stream")
        if head & 0x40:  # new format
            tag = head & 0x3F
            length, pos = _new_length(data, pos + 1)
        else:
            tag, kind = (head >> 2) & 0x0F, head & 0x03
            if kind == 3:
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


def _signature(body: bytes) -> dict | None:
    """Type and the hashed time subpackets of a v4/v5/v6 signature (None for older versions)."""
    if len(body) < 6 or body[0] not in (4, 5, 6):
        return None
    wide = body[0] != 4  # v5 and v6 count the hashed subpackets with four octets
    size_len = 4 if wide else 2
    start = 4 + size_len
    hashed_len = int.from_bytes(body[4:start], "big")
    area = body[start:start + hashed_len]
    sig = {"type": body[1], "created": 0}
    pos = 0
    while pos < len(area):
        first = area[pos]
        if first < 192:
            length, pos = first, pos + 1
        elif first < 255:
            length, pos = ((first - 192) << 8) + area[pos + 1] + 192, pos + 2
        else:
            length, pos = int.from_bytes(area[pos + 1:pos + 5], "big"), pos + 5
        if length < 1 or pos + length > len(area):
            break
        kind, value = area[pos] & 0x7F, area[pos + 1:pos + length]
        if len(value) == 4:
            number = struct.unpack(">I", value)[0]
            if kind == _SUB_CREATED:
                sig["created"] = number
            elif kind == _SUB_KEY_EXPIRES:
                sig["key_expires"] = number
            elif kind == _SUB_SIG_EXPIRES:
                sig["sig_expires"] = number
        pos += length
    return sig


# ----------------------------------------------------------------------------------- probes


def _probes(ev: Evidence, endpoint: str, site: Site, calls: CallLog, timeout: float) -> None:
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ev.put("endpoint", {"url": endpoint, "host": host, "port": port})
    dns = resolve(host, port, calls, timeout)
    ev.put("dns", dns)
    if not dns["addresses"]:
        ev.put("tcp", {"address": "", "ok": False, "kind": "skipped", "error": "no address to connect to",
                       "seconds": 0.0})
    else:
        ev.put("tcp", connect(dns["addresses"][0], port, calls, timeout))
    verify = site.omni.verify_tls and not site.omni.omnictl.insecure_skip_tls_verify
    healthz = endpoint.rstrip("/") + "/healthz"
    ev.put("healthz", http.probe(healthz, calls, ca_file=site.omni.ca_file, verify=verify,
                                 timeout=timeout).to_dict())


def resolve(host: str, port: int, calls: CallLog, timeout: float) -> dict:
    """``getaddrinfo`` with a deadline: ``{host, addresses, seconds, error}``."""
    start = time.monotonic()
    out = {"host": host, "addresses": [], "seconds": 0.0, "error": ""}
    with calls.record(f"dns {host}", f"getaddrinfo {host}:{port}") as call:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dns")
        try:
            infos = pool.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM).result(timeout)
            out["addresses"] = list(dict.fromkeys(info[4][0] for info in infos))
            call.detail = ", ".join(out["addresses"])
        except FutureTimeout:
            out["error"] = f"no answer from the resolver within {timeout:g} s"
        except socket.gaierror as exc:
            out["error"] = f"cannot resolve {host}: {exc.strerror}"
        finally:
            pool.shutdown(wait=False)
        if out["error"]:
            call.outcome, call.detail = "error", out["error"]
    out["seconds"] = round(time.monotonic() - start, 4)
    return out


def connect(address: str, port: int, calls: CallLog, timeout: float) -> dict:
    """One TCP connection: ``{address, ok, kind, error, seconds}``; kind ok|refused|timeout|unreachable."""
    start = time.monotonic()
    shown = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    out = {"address": shown, "ok": False, "kind": "ok", "error": ""}
    with calls.record(f"tcp {shown}", "connect") as call:
        try:
            socket.create_connection((address, port), timeout=timeout).close()
            out["ok"] = True
        except ConnectionRefusedError:
            out["kind"], out["error"] = "refused", f"connection to {shown} refused"
        except (socket.timeout, TimeoutError):
            out["kind"], out["error"] = "timeout", f"no answer from {shown} within {timeout:g} s"
        except OSError as exc:
            out["kind"], out["error"] = "unreachable", f"cannot connect to {shown}: {exc.strerror or exc}"
        call.detail = out["error"] or "connected"
        if not out["ok"]:
            call.outcome = "timeout" if out["kind"] == "timeout" else "error"
    out["seconds"] = round(time.monotonic() - start, 4)
    return out


__all__ = ["Options", "gather", "try_omnictl", "error_detail", "read_config", "key_facts",
           "decode_service_account_key", "pgp_key_facts", "resolve", "connect"]
