"""Probe an HTTP(S) endpoint (a ``/healthz``): status, timing, and what its certificate says.

:func:`probe` never raises for a network failure: the probe *is* the evidence. Its ``kind`` says
what happened (an :class:`~runbook_lib.outcome.Outcome`), in the order a connection goes wrong:

``dns`` the name does not resolve · ``refused`` nothing listens · ``timeout`` no answer within
the deadline · ``tls`` the handshake or certificate check failed · ``http_error`` an answer with
status >= 400 · ``ok`` anything else (redirects are not followed).

For HTTPS the server certificate is read with ``cryptography`` into a :class:`TLSInfo`. When
verification fails, the certificate is fetched again without verification, so the evidence
still shows who issued it and when it expires.
"""

from __future__ import annotations

import datetime
import http.client
import socket
import ssl
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from .. import redact
from ..calls import CallLog
from ..outcome import Outcome

__all__ = ["probe", "HttpProbe", "TLSInfo", "read_certificate"]

KINDS = (Outcome.OK, Outcome.REFUSED, Outcome.DNS_FAILED, Outcome.TIMED_OUT, Outcome.TLS_FAILED, Outcome.HTTP_ERROR)
EXCERPT = 512  # characters of the body kept
READ_LIMIT = 65536  # bytes of the body read at most


@dataclass
class TLSInfo:
    """The server certificate as seen by the probe."""

    verified: bool
    subject: str = ""
    issuer: str = ""
    not_after: str = ""  # ISO 8601, UTC
    days_left: float | None = None
    error: str = ""  # why verification failed ("" when it passed or was off)
    sans: tuple[str, ...] = ()
    fingerprint_sha256: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class HttpProbe:
    url: str
    status: int | None
    seconds: float
    error: str
    kind: Outcome  # one of KINDS
    tls: TLSInfo | None = None
    excerpt: str = ""  # the start of the body (for error pages)

    @property
    def ok(self) -> bool:
        return self.kind == Outcome.OK

    def to_dict(self) -> dict:
        return asdict(self)


def read_certificate(der: bytes, *, verified: bool, error: str = "") -> TLSInfo:
    """A :class:`TLSInfo` from a DER certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    days_left = (not_after - datetime.datetime.now(datetime.timezone.utc)).total_seconds() / 86400
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = tuple(str(v) for v in san.get_values_for_type(x509.DNSName)) + tuple(
            str(v) for v in san.get_values_for_type(x509.IPAddress)
        )
    except x509.ExtensionNotFound:
        sans = ()
    return TLSInfo(
        verified=verified,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=not_after.isoformat(),
        days_left=round(days_left, 2),
        error=error,
        sans=sans,
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(":"),
    )


class _Failed(Exception):
    def __init__(self, kind: Outcome, error: str):
        super().__init__(error)
        self.kind = kind
        self.error = error


class _Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise _Failed(Outcome.TIMED_OUT, f"no answer within {self.seconds:g} s")
        return left


def _connect(host: str, port: int, deadline: _Deadline) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise _Failed(Outcome.DNS_FAILED, f"cannot resolve {host}: {exc.strerror}") from None
    last: _Failed | None = None
    for family, kind, proto, _, addr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.left())
            sock.connect(addr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except ConnectionRefusedError:
            last = _Failed(Outcome.REFUSED, f"connection to {host}:{port} refused")
        except (socket.timeout, TimeoutError):
            last = _Failed(Outcome.TIMED_OUT, f"no answer to the connection within {deadline.seconds:g} s")
        except OSError as exc:
            last = _Failed(Outcome.REFUSED, f"cannot connect to {host}:{port}: {exc.strerror or exc}")
        except _Failed as exc:
            last = exc
        sock.close()
    raise last or _Failed(Outcome.DNS_FAILED, f"{host} has no address")


def _context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    if not verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=ca_file)


def _handshake(host: str, port: int, ctx: ssl.SSLContext, deadline: _Deadline) -> ssl.SSLSocket:
    raw = _connect(host, port, deadline)
    try:
        raw.settimeout(deadline.left())
        return ctx.wrap_socket(raw, server_hostname=host)
    except BaseException:
        raw.close()
        raise


def _unverified_cert(host: str, port: int, deadline: _Deadline) -> bytes | None:
    """The server's certificate fetched without verification (for the details), or None."""
    try:
        with _handshake(host, port, _context(False, None), deadline) as tls:
            return tls.getpeercert(binary_form=True)
    except (OSError, _Failed, ssl.SSLError):
        return None


def probe(url: str, calls: CallLog, ca_file: str | None = None, verify: bool = True,
          timeout: float = 5) -> HttpProbe:
    """``GET url`` once, within ``timeout`` seconds in all, and report what happened (made once per
    run when the run shares its reads)."""
    return calls.once(("http", url, ca_file, verify), lambda: _probe(url, calls, ca_file, verify, timeout))


def _probe(url: str, calls: CallLog, ca_file: str | None, verify: bool, timeout: float) -> HttpProbe:
    parts = urlsplit(url)
    https = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    start = time.monotonic()
    deadline = _Deadline(timeout)
    tls: TLSInfo | None = None
    status: int | None = None
    excerpt = ""
    with calls.record(url, f"GET {path}") as call:
        try:
            if https:
                tls, sock = _open_tls(host, port, ca_file, verify, deadline)
            else:
                sock = _connect(host, port, deadline)
            with sock:
                status, body, sent = _exchange(sock, host, parts.port, path, deadline)
            call.bytes_in, call.bytes_out = len(body), sent
            call.truncated = len(body) >= READ_LIMIT
            excerpt = redact.default().text(body[:EXCERPT].decode("utf-8", errors="replace"))
            kind, error = (Outcome.HTTP_ERROR, f"HTTP {status}") if status >= 400 else (Outcome.OK, "")
        except _Failed as exc:
            kind, error = exc.kind, exc.error
            if kind == Outcome.TLS_FAILED and tls is None and https:
                der = _unverified_cert(host, port, _Deadline(max(deadline.end - time.monotonic(), 0.5)))
                tls = read_certificate(der, verified=False, error=error) if der else TLSInfo(False, error=error)
        call.outcome = (Outcome.OK if kind in (Outcome.OK, Outcome.HTTP_ERROR)  # an answer is a call that worked
                        else Outcome.TIMED_OUT if kind == Outcome.TIMED_OUT else Outcome.ERROR)
        call.detail = f"HTTP {status}" if status is not None else f"{kind}: {error}"
    return HttpProbe(url=url, status=status, seconds=round(time.monotonic() - start, 4), error=error,
                     kind=kind, tls=tls, excerpt=excerpt)


def _open_tls(host, port, ca_file, verify, deadline) -> tuple[TLSInfo, ssl.SSLSocket]:
    try:
        ctx = _context(verify, ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise _Failed(Outcome.TLS_FAILED, f"cannot load the CA file {ca_file}: {exc.strerror or exc}") from None
    try:
        sock = _handshake(host, port, ctx, deadline)
    except ssl.SSLCertVerificationError as exc:
        raise _Failed(Outcome.TLS_FAILED, f"certificate verify failed: {exc.verify_message}") from None
    except (socket.timeout, TimeoutError):
        raise _Failed(Outcome.TIMED_OUT, f"no TLS handshake within {deadline.seconds:g} s") from None
    except ssl.SSLError as exc:
        raise _Failed(Outcome.TLS_FAILED, f"TLS handshake failed: {exc.reason or exc}") from None
    except ConnectionResetError:
        raise _Failed(Outcome.TLS_FAILED, "the connection was reset during the TLS handshake") from None
    except OSError as exc:
        raise _Failed(Outcome.TLS_FAILED, f"TLS handshake failed: {exc.strerror or exc}") from None
    der = sock.getpeercert(binary_form=True)
    info = read_certificate(der, verified=verify) if der else TLSInfo(verified=verify)
    return info, sock


def _exchange(sock, host, explicit_port, path, deadline) -> tuple[int, bytes, int]:
    """Send the request on an open socket; (status, at most READ_LIMIT bytes of body, bytes sent)."""
    conn = http.client.HTTPConnection(host, explicit_port or 80, timeout=deadline.left())
    conn.sock = sock  # already connected (and wrapped in TLS): http.client will not connect again
    host_header = host if explicit_port is None else f"{host}:{explicit_port}"
    headers = {"Host": host_header, "User-Agent": "runbook-probe/1", "Accept": "*/*", "Connection": "close"}
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    try:
        sock.settimeout(deadline.left())
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        sock.settimeout(deadline.left())
        response = conn.getresponse()
        sock.settimeout(deadline.left())
        body = response.read(READ_LIMIT)
    except (socket.timeout, TimeoutError):
        raise _Failed(Outcome.TIMED_OUT, f"no answer within {deadline.seconds:g} s") from None
    except ConnectionRefusedError:
        raise _Failed(Outcome.REFUSED, "connection refused") from None
    except (http.client.HTTPException, OSError) as exc:
        raise _Failed(Outcome.HTTP_ERROR, f"no valid HTTP answer: {type(exc).__name__}: {exc}") from None
    finally:
        conn.sock = None
    return response.status, body, len(request)
