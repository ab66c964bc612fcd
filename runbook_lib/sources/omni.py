"""Omni through the site's ``omnictl`` binary, run as a subprocess with a deadline.

omnictl gets its endpoint and credentials the way an operator's shell would: ``OMNICONFIG`` for
the config file, ``OMNI_SERVICE_ACCOUNT_KEY`` (resolved from the site's secret reference, never
on the command line) and ``OMNI_ENDPOINT`` beside it, ``--context`` and
``--insecure-skip-tls-verify`` when the site sets them. It runs in its own process group, so on
the deadline the whole group is killed and nothing is left behind.

``-o json`` prints one JSON object per resource, concatenated with no array around them:
:func:`parse_objects` reads them with a streaming decoder. omnictl reports every failure as
``Error: ...`` on stderr with exit code 1; :func:`classify` turns that line into the error family
(see the research notes, omni.md §4.6).
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import time

from .. import redact
from .. import site as site_model
from ..calls import CallLog
from ..errors import (
    AuthFailed,
    CommandFailed,
    Malformed,
    NotFound,
    PermissionDenied,
    SourceError,
    TimedOut,
    TLSFailed,
    Unreachable,
)
from . import Bounded, CommandResult, decode

__all__ = ["Omnictl", "parse_objects", "classify"]

TARGET = "omnictl"
MAX_BYTES = 64 << 20  # omnictl's stdout kept at most (a `get` of every machine stays far below)
KILL_WAIT = 2.0


def parse_objects(text: str, target: str = TARGET) -> list[dict]:
    """Concatenated JSON objects (``omnictl get -o json``) as a list; empty output is ``[]``."""
    decoder = json.JSONDecoder()
    out: list[dict] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos].isspace():
            pos += 1
        if pos >= end:
            return out
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise Malformed(target, f"output is not JSON objects ({exc.msg} at offset {exc.pos})") from None
        if not isinstance(obj, dict):
            raise Malformed(target, f"output holds a JSON {type(obj).__name__}, not an object")
        out.append(obj)


def _error_line(stderr: str) -> str:
    """omnictl's ``Error: ...`` line without the prefix (or the last non-empty line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("Error:"):
            return line[len("Error:"):].strip()
    return lines[-1] if lines else ""


_CODE = re.compile(r"code = (\w+)")


def classify(stderr: str, rc: int, target: str = TARGET) -> SourceError:
    """The error a failed omnictl run stands for; the reason is omnictl's own message."""
    line = _error_line(stderr)
    reason = redact.default().text(line) or f"exit code {rc}"
    m = _CODE.search(stderr)
    code = m.group(1) if m else None
    tls = re.search(r"x509|certificate", stderr, re.I)
    if code == "Unauthenticated":
        return AuthFailed(target, reason)
    if code == "PermissionDenied":
        return PermissionDenied(target, reason)
    if code == "Unavailable":
        return TLSFailed(target, reason) if tls else Unreachable(target, reason)
    if code == "DeadlineExceeded":
        return TimedOut(target, reason)
    if code == "NotFound" or "is not registered" in stderr:
        return NotFound(target, reason)
    if tls:
        return TLSFailed(target, reason)
    if "is too old" in stderr or "is newer than this Omni" in stderr:
        return CommandFailed(target, f"omnictl and Omni versions do not match: {reason}", rc=rc, stderr=stderr)
    if "has not been configured" in stderr:
        return CommandFailed(target, f"no omnictl context: {reason}", rc=rc, stderr=stderr)
    return CommandFailed(target, reason, rc=rc, stderr=stderr)


class Omnictl:
    """The site's omnictl. ``run()`` raises a classified error on a non-zero exit."""

    def __init__(self, spec: site_model.Omni, calls: CallLog):
        self.spec = spec
        self.options = spec.omnictl
        self.calls = calls
        self._env: dict[str, str] | None = None

    # --- how it is run -------------------------------------------------------------------------
    def binary(self) -> str:
        name = os.path.expanduser(self.options.binary)
        path = shutil.which(name) if os.sep not in name else name
        if not path or not os.path.isfile(path):
            raise NotFound(TARGET, f"the omnictl binary '{self.options.binary}' was not found "
                                   f"(set omni.omnictl.binary to its path)")
        if not os.access(path, os.X_OK):
            raise NotFound(TARGET, f"'{path}' was not found as an executable (it is not executable)")
        return path

    def environment(self) -> dict[str, str]:
        if self._env is None:
            env = dict(os.environ)
            if self.options.config:
                env["OMNICONFIG"] = os.path.expanduser(self.options.config)
            if self.options.service_account_key:
                env["OMNI_SERVICE_ACCOUNT_KEY"] = site_model.resolve_secret(
                    self.options.service_account_key, field="omni.omnictl.service_account_key"
                )
                env["OMNI_ENDPOINT"] = self.spec.url
            self._env = env
        return self._env

    def global_flags(self) -> list[str]:
        flags = []
        if self.options.context:
            flags += ["--context", self.options.context]
        if self.options.insecure_skip_tls_verify:
            flags.append("--insecure-skip-tls-verify")
        return flags

    # --- commands --------------------------------------------------------------------------------
    def run(self, args: list[str], timeout: float | None = None, *, check: bool = True) -> CommandResult:
        """``omnictl [global flags] ARGS``; a classified error when it fails (unless ``check=False``).
        When the run shares its reads, the same command runs once."""
        argv = [*self.global_flags(), *args]
        return self.calls.once(("omnictl", check, *argv), lambda: self._run(argv, timeout, check))

    def _run(self, argv: list[str], timeout: float | None, check: bool) -> CommandResult:
        timeout = float(timeout or self.options.timeout)
        action = "omnictl " + shlex.join(redact.mask_args(argv))
        with self.calls.record(TARGET, action) as call:
            binary = self.binary()
            env = self.environment()
            result = _run_bounded([binary, *argv], env, timeout, call)
            call.detail = f"rc={result.rc}"
            if check and result.rc != 0:
                err = classify(result.stderr, result.rc)
                call.detail = f"rc={result.rc}: {err.reason}"
                raise err
            return result

    def delete(self, rtype: str, rid: str, namespace: str | None = None, timeout: float | None = None) -> CommandResult:
        """``omnictl delete TYPE ID [-n NS]`` (only ever inside a guarded fix): recorded as a write,
        never shared. omnictl tears the resource down and waits until it is destroyed, that is until
        every finalizer on it is released."""
        args = [*self.global_flags(), "delete", rtype, rid] + (["-n", namespace] if namespace else [])
        timeout = float(timeout or self.options.timeout)
        with self.calls.record(TARGET, "omnictl " + shlex.join(redact.mask_args(args)), write=True) as call:
            result = _run_bounded([self.binary(), *args], self.environment(), timeout, call)
            call.detail = f"rc={result.rc}"
            if result.rc != 0:
                err = classify(result.stderr, result.rc)
                call.detail = f"rc={result.rc}: {err.reason}"
                raise err
            return result

    def get(self, rtype: str, rid: str | None = None, namespace: str | None = None,
            selector: str | None = None, timeout: float | None = None) -> list[dict]:
        """``omnictl get TYPE [ID] [-n NS] [-l SELECTOR] -o json``, one dict per resource.

        A missing ID (or an unknown type) raises NotFound; an empty listing is ``[]``.
        """
        args = ["get", rtype]
        if rid:
            args.append(rid)
        if namespace:
            args += ["-n", namespace]
        if selector:
            args += ["-l", selector]
        args += ["-o", "json"]
        return parse_objects(self.run(args, timeout=timeout).stdout)

    def version(self, timeout: float | None = None) -> CommandResult:
        """``omnictl version``: the client's version and the server's, which it has to reach."""
        return self.run(["version"], timeout=timeout)


def _run_bounded(argv: list[str], env: dict[str, str], timeout: float, call) -> CommandResult:
    """Run a process in its own group, drain both pipes, kill the group at the deadline."""
    start = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, start_new_session=True)
    except FileNotFoundError:
        raise NotFound(TARGET, f"the omnictl binary '{argv[0]}' was not found") from None
    except PermissionError:
        raise NotFound(TARGET, f"'{argv[0]}' was not found as an executable (permission denied)") from None
    out, err = Bounded(MAX_BYTES), Bounded(1 << 20)
    received = 0
    deadline = start + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                _kill_group(proc)
                call.bytes_in = received
                raise TimedOut(TARGET, f"omnictl did not finish within {timeout:g} s (killed)")
            for key, _ in sel.select(min(left, 0.5)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                received += len(chunk)
                key.data.add(chunk)
    try:
        rc = proc.wait(max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        call.bytes_in = received
        raise TimedOut(TARGET, f"omnictl did not finish within {timeout:g} s (killed)") from None
    finally:
        proc.stdout.close()
        proc.stderr.close()
    call.bytes_in = received
    call.truncated = bool(out.overflow or err.overflow)
    stdout, r1 = decode(bytes(out.data))
    stderr, r2 = decode(bytes(err.data))
    return CommandResult(argv=["omnictl", *argv[1:]], rc=rc, stdout=stdout, stderr=stderr,
                         seconds=round(time.monotonic() - start, 4), bytes_in=received,
                         truncated=call.truncated, replaced=r1 + r2)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group the child leads, then reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(KILL_WAIT)
    except subprocess.TimeoutExpired:
        pass
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
