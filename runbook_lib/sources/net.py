"""Network probes, each with a deadline and a :class:`~runbook_lib.calls.Call` in the caller's log.

From here: :func:`resolve` (``getaddrinfo``) and :func:`connect` (one TCP connection). From a remote
host, over its SSH source: :func:`curl_from` (``curl`` of a URL) and :func:`nc_from` (``nc -z -v``
of TCP ports). A probe never raises for the network failing: what it found *is* the evidence, its
``kind`` an :class:`~runbook_lib.outcome.Outcome`. The TLS handshake and ``GET`` of an endpoint
are :func:`runbook_lib.sources.http.probe`.
"""

from __future__ import annotations

import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Iterable

from ..calls import CallLog
from ..errors import SourceError
from ..outcome import Outcome
from .ssh import SSHHost

__all__ = ["resolve", "connect", "curl_from", "nc_from", "parse_nc", "CURL_OUTCOMES"]


# ------------------------------------------------------------------------------- from here


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
            call.outcome, call.detail = Outcome.ERROR, out["error"]
    out["seconds"] = round(time.monotonic() - start, 4)
    return out


def connect(address: str, port: int, calls: CallLog, timeout: float) -> dict:
    """One TCP connection: ``{address, ok, kind, error, seconds}``; kind ok|refused|timeout|unreachable."""
    start = time.monotonic()
    shown = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    out = {"address": shown, "ok": False, "kind": Outcome.OK, "error": ""}
    with calls.record(f"tcp {shown}", "connect") as call:
        try:
            socket.create_connection((address, port), timeout=timeout).close()
            out["ok"] = True
        except ConnectionRefusedError:
            out["kind"], out["error"] = Outcome.REFUSED, f"connection to {shown} refused"
        except (socket.timeout, TimeoutError):
            out["kind"], out["error"] = Outcome.TIMED_OUT, f"no answer from {shown} within {timeout:g} s"
        except OSError as exc:
            out["kind"], out["error"] = Outcome.UNREACHABLE, f"cannot connect to {shown}: {exc.strerror or exc}"
        call.detail = out["error"] or "connected"
        if not out["ok"]:
            call.outcome = Outcome.TIMED_OUT if out["kind"] == Outcome.TIMED_OUT else Outcome.ERROR
    out["seconds"] = round(time.monotonic() - start, 4)
    return out


# ------------------------------------------------------------------------ from a remote host

# curl exit codes that say why a connection failed (man curl, "EXIT CODES")
CURL_OUTCOMES = {6: Outcome.DNS_FAILED, 7: Outcome.REFUSED, 28: Outcome.TIMED_OUT, 35: Outcome.TLS_FAILED,
                 51: Outcome.TLS_FAILED, 58: Outcome.TLS_FAILED, 60: Outcome.TLS_FAILED, 77: Outcome.TLS_FAILED}


def curl_from(host: SSHHost, url: str, *, timeout: float = 5.0) -> dict:
    """GET ``url`` from ``host``: ``{url, code, rc, kind, error}``; kind is ok|refused|dns|timeout|tls|error.

    Raises the SSH source's errors when the host itself cannot be reached.
    """
    argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", f"{timeout:g}", url]
    res = host.run(argv, timeout=timeout + 5)
    code = res.stdout.strip()[-3:]
    # curl prints "curl: (N) message", sometimes followed by a help text: keep the message
    error = next((line for line in res.stderr.splitlines() if line.startswith("curl: (")), res.stderr.strip())
    out = {"url": url, "code": int(code) if code.isdigit() and code != "000" else None, "rc": res.rc,
           "error": error}
    if res.rc == 0 and out["code"]:
        out["kind"] = Outcome.OK
    elif res.rc == 127:
        out["kind"] = Outcome.ERROR
        out["error"] = "curl is not installed on the host"
    else:
        out["kind"] = CURL_OUTCOMES.get(res.rc, Outcome.ERROR)
    return out


_NC_OK = re.compile(r"^Connection to (\S+) (\d+) port \[[^\]]*\] succeeded!")
_NC_FAIL = re.compile(r"^nc: connect to (\S+) port (\d+) \(tcp\) (failed|timed out): (.*)$")


def parse_nc(stderr: str, ports: Iterable[int]) -> dict[str, Outcome]:
    """Per port: ``ok``, ``refused``, ``timeout``, ``unreachable`` or ``error``, from ``nc -z -v``
    (netcat-openbsd's lines); ``no answer`` for a port it printed nothing about."""
    out = {str(p): Outcome.NO_ANSWER for p in ports}
    for line in stderr.splitlines():
        if m := _NC_OK.match(line.strip()):
            out[m.group(2)] = Outcome.OK
        elif m := _NC_FAIL.match(line.strip()):
            reason = m.group(4)
            out[m.group(2)] = (Outcome.TIMED_OUT if m.group(3) == "timed out" or "timed out" in reason else
                               Outcome.REFUSED if "refused" in reason else
                               Outcome.UNREACHABLE if "No route" in reason or "unreachable" in reason else
                               Outcome.ERROR)
    return out


def nc_from(host: SSHHost, address: str, ports: Iterable[int], timeout: float) -> dict:
    """``nc -z -v -w T ADDRESS PORT...`` run on ``host``: ``{address, ports, lines}`` (ports as
    :func:`parse_nc` reads them, lines what nc printed), or ``{address, error}`` when nc gave no verdict."""
    ports = [int(p) for p in ports]
    argv = ["nc", "-z", "-v", "-w", f"{timeout:g}", address, *map(str, ports)]
    try:
        res = host.run(argv, timeout=timeout * len(ports) + 5)
    except SourceError as exc:
        return {"address": address, "error": str(exc)}
    if res.rc == 127:
        return {"address": address, "error": "nc is not installed on the provider host (netcat-openbsd)"}
    lines = [line for line in res.stderr.splitlines() if line.strip()][:6]
    verdicts = parse_nc(res.stderr, ports)
    if all(v == Outcome.NO_ANSWER for v in verdicts.values()):
        return {"address": address, "error": f"nc gave no verdict (rc {res.rc}): {' | '.join(lines)[:200]}"}
    return {"address": address, "ports": verdicts, "lines": lines}
