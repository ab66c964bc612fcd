"""curl (7.88) on a lab host, for probes made *from* the host.

The host's ``probes`` say, per kind of target (the twin's ``ctx.targets``, keyed ``host:port``),
what a connection does: ``pass`` makes the request for real (TCP, TLS against the twin's CA or
``--cacert``, one HTTP/1.1 exchange), ``refused``, ``timeout`` and ``dns`` fail the way curl reports
a refused port, a connect timeout or an unknown host, and ``untrusted`` fails certificate
verification unless ``-k`` is given. Exit codes, ``-s``/``-S``, ``-f``, ``-o``, ``-I``/``-i``,
``-w`` variables, ``-m``/``--connect-timeout`` and the progress meter are curl's; options whose
effect is not reproduced (uploads, proxies, client certificates ...) are refused, not ignored.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from .shell import Session

VERSION = "7.88.1"
PROBE_MODES = ("pass", "refused", "timeout", "dns", "untrusted")
_TRY = "curl: try 'curl --help' or 'curl --manual' for more information\n"
_CA_HELP = (
    "More details here: https://curl.se/docs/sslcerts.html\n\n"
    "curl failed to verify the legitimacy of the server and therefore could not\n"
    "establish a secure connection to it. To learn more about this situation and\n"
    "how to fix it, please visit the web page mentioned above.\n"
)
_FLAGS = {"-s": "silent", "--silent": "silent", "-S": "show_error", "--show-error": "show_error",
          "-k": "insecure", "--insecure": "insecure", "-I": "head", "--head": "head", "-f": "fail",
          "--fail": "fail", "--fail-with-body": "fail", "-L": "location", "--location": "location",
          "-i": "include", "--include": "include", "-v": "verbose", "--verbose": "verbose",
          "-4": "ipv4", "--ipv4": "ipv4", "-6": "ipv6", "--ipv6": "ipv6", "--compressed": "compressed",
          "--no-progress-meter": "no_progress", "-N": "no_buffer", "--no-buffer": "no_buffer"}
_VALUES = {"-o": "output", "--output": "output", "-w": "write_out", "--write-out": "write_out",
           "-m": "max_time", "--max-time": "max_time", "--connect-timeout": "connect_timeout",
           "--cacert": "cacert", "-H": "header", "--header": "header", "-X": "request",
           "--request": "request", "-A": "user_agent", "--user-agent": "user_agent", "--url": "url",
           "--noproxy": "noproxy", "--retry": "retry"}
# real curl options whose effect the twin does not reproduce: refused rather than ignored
_UNSIMULATED = {"-d", "--data", "--data-raw", "--json", "-F", "--form", "-u", "--user", "--cert", "--key",
                "--resolve", "--connect-to", "-x", "--proxy", "-T", "--upload-file", "-O", "--remote-name",
                "-C", "--continue-at", "-K", "--config", "--capath", "--http2", "--http3"}


class UsageError(Exception):
    """A bad command line: the message goes to stderr, the exit status is 2."""


@dataclass
class Invocation:
    """One curl invocation: its options and what the transfer produced."""

    url: str = ""
    flags: set = field(default_factory=set)
    values: dict = field(default_factory=dict)
    spelled: dict = field(default_factory=dict)  # option key -> how the command line spelled it
    headers: list = field(default_factory=list)
    status: int = 0
    head_bytes: bytes = b""
    body: bytes = b""
    remote: tuple = ("", 0)
    started: float = 0.0
    t_connect: float = 0.0
    rc: int = 0
    error: str = ""

    @property
    def method(self) -> str:
        return self.values.get("request") or ("HEAD" if "head" in self.flags else "GET")

    def seconds(self, key: str) -> float | None:
        if key not in self.values:
            return None
        try:
            value = float(self.values[key])
        except ValueError:
            raise UsageError(f"curl: option {self.spelled[key]}: expected a proper numerical parameter\n"
                             f"{_TRY}") from None
        return value if value > 0 else None


def _parse_args(argv: list[str]) -> Invocation:
    run = Invocation()
    args = list(argv)
    while args:
        a = args.pop(0)
        if a.startswith("--") or (a.startswith("-") and len(a) == 2):
            names = [a]
        elif a.startswith("-") and len(a) > 2:
            names = []
            for j, ch in enumerate(a[1:], start=1):
                names.append("-" + ch)
                if "-" + ch in _VALUES:
                    if j + 1 < len(a):
                        args.insert(0, a[j + 1:])
                    break
        else:
            if run.url:
                raise UsageError("curl: the lab twin's curl takes one URL\n")
            run.url = a
            continue
        for name in names:
            if name in _FLAGS:
                run.flags.add(_FLAGS[name])
            elif name in _VALUES:
                if not args:
                    raise UsageError(f"curl: option {name}: requires parameter\n{_TRY}")
                value = args.pop(0)
                key = _VALUES[name]
                if key == "header":
                    run.headers.append(value)
                elif key == "url":
                    run.url = value
                else:
                    run.values[key] = value
                    run.spelled[key] = name
            elif name in _UNSIMULATED:
                raise UsageError(f"curl: option {name}: not simulated by the lab twin's curl\n")
            else:
                raise UsageError(f"curl: option {name}: is unknown\n{_TRY}")
    if not run.url:
        raise UsageError(f"curl: no URL specified!\n{_TRY}")
    return run


class _Failure(Exception):
    """A transfer failed: curl's exit code and its error message."""

    def __init__(self, rc: int, message: str):
        super().__init__(message)
        self.rc = rc
        self.message = message


def _ms(since: float) -> int:
    return int((time.monotonic() - since) * 1000)


def _refused(host: str, port: int, ms: int) -> _Failure:
    return _Failure(7, f"Failed to connect to {host} port {port} after {ms} ms: Couldn't connect to server")


def _connect_timeout(since: float) -> _Failure:
    return _Failure(28, f"Connection timed out after {_ms(since)} milliseconds")


def _ssl_context(run: Invocation, sh: "Session") -> ssl.SSLContext:
    if "insecure" in run.flags:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    cacert = run.values.get("cacert")
    if cacert is None:  # the host's system store: it trusts the twin's CA (scenarios use `untrusted`)
        return ssl.create_default_context(cafile=str(sh.ctx.ca_file))
    pem = (sh.host.get("files") or {}).get(sh.abspath(cacert))
    if pem is None:
        raise _Failure(77, f"error setting certificate file: {cacert}")
    try:
        return ssl.create_default_context(cadata=pem)
    except ssl.SSLError:
        raise _Failure(77, f"error setting certificate file: {cacert}") from None


async def _read_response(reader: asyncio.StreamReader, run: Invocation, head_only: bool) -> None:
    status_line = await reader.readline()
    if not status_line:
        raise _Failure(52, "Empty reply from server")
    head = bytearray(status_line)
    parts = status_line.decode("latin-1").split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise _Failure(1, "Received HTTP/0.9 when not allowed")
    run.status = int(parts[1])
    headers: dict[str, str] = {}
    while True:
        line = await reader.readline()
        head += line
        if line in (b"\r\n", b"\n", b""):
            break
        key, _, value = line.decode("latin-1").partition(":")
        headers[key.strip().lower()] = value.strip()
    run.head_bytes = bytes(head)
    if head_only or run.status in (204, 304) or 100 <= run.status < 200:
        return
    body = bytearray()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                break
            body += await reader.readexactly(size)
            await reader.readline()
            run.body = bytes(body)
    elif "content-length" in headers:
        body += await reader.readexactly(int(headers["content-length"]))
    else:
        body += await reader.read()
    run.body = bytes(body)


async def _transfer(run: Invocation, sh: "Session", host: str, port: int, scheme: str, target: str) -> None:
    """Really perform the request from the twin: connect, TLS, one HTTP/1.1 exchange."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise _Failure(6, f"Could not resolve host: {host}") from None
    if not ip.is_loopback:  # the twin only ever connects on loopback
        raise _refused(host, port, 0)
    run.remote = (str(ip), port)
    max_time = run.seconds("max_time")
    connect_limit = min(filter(None, [max_time, run.seconds("connect_timeout"), 300.0]))
    start = run.started
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(str(ip), port), connect_limit)
    except (asyncio.TimeoutError, TimeoutError):
        raise _connect_timeout(start) from None
    except OSError:
        raise _refused(host, port, _ms(start)) from None
    try:
        if scheme == "https":
            tls = _ssl_context(run, sh)
            remaining = connect_limit - (time.monotonic() - start)
            try:
                await asyncio.wait_for(writer.start_tls(tls, server_hostname=host.strip("[]")), max(remaining, 0.001))
            except (asyncio.TimeoutError, TimeoutError):
                raise _connect_timeout(start) from None
            except ssl.SSLCertVerificationError as exc:
                if exc.verify_code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
                    raise _Failure(60, "SSL: no alternative certificate subject name matches target host "
                                       f"name '{host}'") from None
                raise _Failure(60, f"SSL certificate problem: {exc.verify_message}") from None
            except (ssl.SSLError, ConnectionError) as exc:
                raise _Failure(35, f"OpenSSL SSL_connect: {getattr(exc, 'reason', None) or 'SSL_ERROR_SYSCALL'}"
                                   f" in connection to {host}:{port} ") from None
        run.t_connect = time.monotonic() - start
        default_port = 443 if scheme == "https" else 80
        host_header = host if port == default_port else f"{host}:{port}"
        lines = [f"{run.method} {target} HTTP/1.1", f"Host: {host_header}",
                 f"User-Agent: {run.values.get('user_agent', 'curl/' + VERSION)}", "Accept: */*"]
        lines += run.headers
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        remaining = (max_time - (time.monotonic() - start)) if max_time else None
        try:
            await asyncio.wait_for(_read_response(reader, run, run.method == "HEAD"), remaining)
        except (asyncio.TimeoutError, TimeoutError):
            raise _Failure(28, f"Operation timed out after {_ms(start)} milliseconds with "
                               f"{len(run.body)} bytes received") from None
        except asyncio.IncompleteReadError:
            raise _Failure(18, "transfer closed with outstanding read data remaining") from None
        except ConnectionResetError:
            raise _Failure(56, "Recv failure: Connection reset by peer") from None
    finally:
        writer.close()


async def _simulate(mode: str, run: Invocation, host: str, port: int, scheme: str) -> None:
    """A probe whose outcome the scenario fixed: fail the way curl fails."""
    if mode == "refused":
        raise _refused(host, port, 0)
    if mode == "dns":
        raise _Failure(6, f"Could not resolve host: {host}")
    if mode == "timeout":
        limits = [x for x in (run.seconds("max_time"), run.seconds("connect_timeout")) if x]
        if limits:
            await asyncio.sleep(min(limits))
        else:
            await asyncio.Event().wait()  # curl's 300 s connect timeout: `timeout` kills it first
        raise _connect_timeout(run.started)
    if mode == "untrusted" and scheme == "https" and "insecure" not in run.flags:
        raise _Failure(60, "SSL certificate problem: unable to get local issuer certificate")
    raise AssertionError(f"no simulation for probe mode {mode!r}")


_WRITE_OUT_PIECE = re.compile(r"(%\{[a-z_]+\}|%%|\\[nrt\\])")  # a variable, %% or an escape


async def _write_out(run: Invocation, sh: "Session") -> None:
    fmt = run.values.get("write_out")
    if fmt is None:
        return
    stream = "stdout"
    total = time.monotonic() - run.started
    values = {
        "http_code": f"{run.status:03d}", "response_code": f"{run.status:03d}", "exitcode": str(run.rc),
        "errormsg": run.error, "time_total": f"{total:.6f}", "time_connect": f"{run.t_connect:.6f}",
        "time_appconnect": f"{run.t_connect:.6f}", "time_namelookup": "0.000010",
        "time_starttransfer": f"{total:.6f}", "size_download": str(len(run.body)),
        "size_header": str(len(run.head_bytes)), "url": run.url, "url_effective": run.url,
        "remote_ip": run.remote[0], "remote_port": str(run.remote[1] or ""),
        "num_connects": "1" if run.remote[0] else "0",
        "ssl_verify_result": "0" if run.rc != 60 else "20", "scheme": urlsplit(run.url).scheme.upper() or "HTTP",
        "method": run.method, "http_version": "1.1" if run.status else "0",
    }
    out = []
    for piece in _WRITE_OUT_PIECE.split(fmt):
        if not piece:
            continue
        if piece in ("%{stdout}", "%{stderr}"):
            await sh.io.write(stream, "".join(out))
            out, stream = [], piece[2:-1]
        elif piece.startswith("%{"):
            name = piece[2:-1]
            if name in values:
                out.append(values[name])
            else:
                await sh.io.err(f"curl: unknown --write-out variable: '{name}'\n")
        elif piece == "%%":
            out.append("%")
        elif piece.startswith("\\"):
            out.append({"\\n": "\n", "\\r": "\r", "\\t": "\t", "\\\\": "\\"}[piece])
        else:
            out.append(piece)
    await sh.io.write(stream, "".join(out))


def _progress(run: Invocation) -> str:
    size = len(run.body)
    pct = 100 if run.status and run.rc == 0 else 0
    return ("  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current\n"
            "                                 Dload  Upload   Total   Spent    Left  Speed\n"
            f"\r{pct:>3} {size:>5}  {pct:>3} {size:>5}    0     0      0      0 --:--:-- --:--:-- --:--:--     0\n")


async def main(args: list[str], sh: "Session") -> int:
    """Run ``curl ARGS``; returns curl's exit status."""
    try:
        run = _parse_args(args)
        for key in ("max_time", "connect_timeout"):
            run.seconds(key)  # a non-number is a usage error before anything is sent
    except UsageError as exc:
        await sh.io.err(str(exc))
        return 2
    run.started = time.monotonic()
    url = run.url if "://" in run.url else "http://" + run.url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        run.rc, run.error = 1, f'Protocol "{scheme}" not supported or disabled in libcurl'
    else:
        host = parts.hostname or ""
        shown = f"[{host}]" if ":" in host else host
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            port = 0
        lookup_host = "127.0.0.1" if host == "localhost" else host
        kind = sh.ctx.targets.get(f"{lookup_host}:{port}") or sh.ctx.targets.get(f"{host}:{port}")
        mode = (sh.host.get("probes") or {}).get(kind, "pass") if kind else "pass"
        if mode not in PROBE_MODES:
            await sh.io.err(f"lab twin: probes.{kind}: unknown mode {mode!r}; one of {', '.join(PROBE_MODES)}\n")
            return 2
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            if mode == "pass" or (mode == "untrusted" and ("insecure" in run.flags or scheme != "https")):
                await _transfer(run, sh, lookup_host, port, scheme, target)
            else:
                await _simulate(mode, run, shown, port, scheme)
            if "fail" in run.flags and run.status >= 400:
                raise _Failure(22, f"The requested URL returned error: {run.status}")
        except _Failure as exc:
            run.rc, run.error = exc.rc, exc.message
    if run.rc == 0:
        output = run.values.get("output")
        data = (run.head_bytes if ("head" in run.flags or "include" in run.flags) else b"")
        data += b"" if "head" in run.flags else run.body
        if output is None:
            await sh.io.out(data)
        elif output != "/dev/null":
            sh.host.setdefault("files", {})[sh.abspath(output)] = data.decode("utf-8", "replace")
    quiet = "silent" in run.flags
    if not quiet and "no_progress" not in run.flags:
        await sh.io.err(_progress(run))
    await _write_out(run, sh)
    if run.rc and (not quiet or "show_error" in run.flags):
        await sh.io.err(f"curl: ({run.rc}) {run.error}\n" + (_CA_HELP if run.rc == 60 else ""))
    return run.rc
