"""Probes run *from* a remote host (the view the provider has), with curl over SSH."""

from __future__ import annotations

from ..sources.ssh import SSHHost

# curl exit codes that say why a connection failed (man curl, "EXIT CODES")
_CURL_KINDS = {6: "dns", 7: "refused", 28: "timeout", 35: "tls", 51: "tls", 58: "tls", 60: "tls", 77: "tls"}


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
        out["kind"] = "ok"
    elif res.rc == 127:
        out["kind"] = "error"
        out["error"] = "curl is not installed on the host"
    else:
        out["kind"] = _CURL_KINDS.get(res.rc, "error")
    return out
