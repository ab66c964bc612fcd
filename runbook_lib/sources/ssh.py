"""Commands on a remote host over SSH (paramiko), with deadlines, bounded memory and provenance.

One :class:`SSHHost` per site host. It connects on first use and reuses that one connection for
every command. Host keys are checked strictly unless the site says ``strict_host_keys: false``.

Each command runs remotely as ``timeout -k 2 <secs> <argv...>`` so nothing is left running on
the host, and a local wall-clock deadline (a little longer, to let the remote ``timeout`` report
first) closes the channel if the host stops answering. Both outputs are drained as they arrive:
paramiko only reopens the window for what is read, so an unread stderr would stall stdout.
"""

from __future__ import annotations

import errno
import getpass
import math
import os
import select
import shlex
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable

import paramiko

from .. import redact
from ..calls import CallLog
from ..errors import (
    AuthFailed,
    HostKeyMismatch,
    Malformed,
    SourceError,
    TimedOut,
    TLSFailed,
    Unreachable,
)
from ..site import SSHTarget, resolve_secret
from . import Bounded, CommandResult, LineSplitter, Tail, decode

CHUNK = 65536
KILL_AFTER = 2  # seconds the remote `timeout` waits after TERM before KILL
LOCAL_GRACE = 1.0  # the local deadline is the command timeout plus this
RUN_MAX_BYTES = 8 << 20  # run() keeps at most this much of each stream
SHARED_STREAM_BYTES = 32 << 20  # a shared stream keeps at most this much for the callers after the first
TIMEOUT_RC = 124  # what `timeout` exits with when the command ran out of time

__all__ = ["SSHHost", "CommandResult", "Endpoint", "resolve_endpoint"]


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect, after ``ssh_config`` and the site's fields are merged."""

    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...]  # explicit key first; ssh_config IdentityFile entries otherwise
    explicit_key: bool  # the site named key_file: use only it, no agent, no ~/.ssh/id_*
    identities_only: bool
    known_hosts: tuple[str, ...]
    proxy_command: str | None = None  # ProxyCommand, or ProxyJump turned into `ssh -W`

    def __str__(self) -> str:
        return f"{self.user}@{self.hostname}:{self.port}"


def _expand(path: str) -> str:
    return os.path.expandvars(os.path.expanduser(path))


def resolve_endpoint(target: SSHTarget) -> Endpoint:
    """Merge ``ssh_config`` (looked up by alias, else host) with the site's explicit fields.

    The site wins wherever it sets a field; ``known_hosts`` from the site counts only when it was
    written in the site file, otherwise ``UserKnownHostsFile`` from ``ssh_config`` applies.
    """
    cfg: dict = {}
    name = target.alias or target.host or ""
    config_path = _expand(target.ssh_config)
    if os.path.isfile(config_path):
        try:
            cfg = paramiko.SSHConfig.from_path(config_path).lookup(name)
        except Exception as exc:  # paramiko's ConfigParseError, a bad Match, an unreadable file
            raise Malformed(f"ssh {target.label}", f"cannot read ssh_config {config_path}: {exc}") from None
    hostname = target.host or cfg.get("hostname") or name
    try:
        port = target.port or int(cfg.get("port", 22))
    except ValueError:
        raise Malformed(f"ssh {target.label}", f"ssh_config {config_path}: Port is not a number") from None
    user = target.user or cfg.get("user") or getpass.getuser()
    if target.key_file:
        keys: tuple[str, ...] = (_expand(target.key_file),)
    else:
        keys = tuple(_expand(k) for k in cfg.get("identityfile", []) if os.path.exists(_expand(k)))
    if "known_hosts" in target.model_fields_set or not cfg.get("userknownhostsfile"):
        known = (_expand(target.known_hosts),)
    else:
        known = tuple(_expand(k) for k in cfg["userknownhostsfile"].split())
    return Endpoint(
        hostname=hostname,
        port=port,
        user=user,
        key_files=keys,
        explicit_key=bool(target.key_file),
        identities_only=str(cfg.get("identitiesonly", "no")).lower() == "yes",
        known_hosts=known,
        proxy_command=_proxy_command(cfg, hostname, port),
    )


def _proxy_command(cfg: dict, hostname: str, port: int) -> str | None:
    """ProxyCommand as ssh_config gives it (tokens expanded), or ProxyJump as OpenSSH runs it."""
    command = cfg.get("proxycommand")
    if command and command.lower() != "none":
        return command
    jump = cfg.get("proxyjump")
    if jump and jump.lower() != "none":
        hops = jump.split(",")
        chain = ["-J", ",".join(hops[:-1])] if len(hops) > 1 else []
        return shlex.join(["ssh", "-W", f"[{hostname}]:{port}", *chain, hops[-1]])
    return None


def remote_command(argv: list[str], timeout: float) -> str:
    """The shell line sent to the host: the argv under ``timeout``, each word quoted."""
    if not argv:
        raise ValueError("empty command")
    secs = max(1, math.ceil(timeout)) if timeout >= 1 else round(timeout, 3)
    return shlex.join(["timeout", "-k", str(KILL_AFTER), f"{secs:g}", *argv])


class SSHHost:
    """A host reached over SSH. ``run()`` collects output; ``stream()`` hands it over line by line."""

    def __init__(self, target: SSHTarget, calls: CallLog):
        self.target = target
        self.calls = calls
        self.label = target.label
        self.name = f"ssh {self.label}"
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()

    # --- connection -----------------------------------------------------------------------
    def _transport(self) -> paramiko.Transport:
        with self._lock:
            client = self._client
            if client is not None:
                transport = client.get_transport()
                if transport is not None and transport.is_active():
                    return transport
                client.close()
                self._client = None
            self._client = self._connect()
            return self._client.get_transport()

    def _connect(self) -> paramiko.SSHClient:
        ep = resolve_endpoint(self.target)
        with self.calls.record(self.name, f"connect {ep}") as call:
            pkey = self._load_key(ep)
            client = paramiko.SSHClient()
            if self.target.strict_host_keys:
                for path in ep.known_hosts:
                    if os.path.isfile(path):
                        client.load_host_keys(path)
                client.set_missing_host_key_policy(paramiko.RejectPolicy())
            else:  # explicitly off: accept and remember in memory only, never write a file
                client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            use_agent = not ep.explicit_key and not ep.identities_only
            t = self.target.connect_timeout
            sock = None
            try:
                sock = paramiko.ProxyCommand(ep.proxy_command) if ep.proxy_command else None
                client.connect(
                    ep.hostname,
                    port=ep.port,
                    username=ep.user,
                    pkey=pkey,
                    key_filename=list(ep.key_files[1:] if pkey else ep.key_files) or None,
                    allow_agent=use_agent,
                    look_for_keys=use_agent,
                    timeout=t,
                    banner_timeout=t,
                    auth_timeout=t,
                    channel_timeout=t,
                    sock=sock,
                )
            except Exception as exc:
                transport = client.get_transport()
                banner = bool(transport is not None and transport.remote_version)
                client.close()
                if sock is not None:
                    sock.close()
                raise self._connect_error(exc, ep, banner=banner) from None
            transport = client.get_transport()
            if isinstance(transport.sock, socket.socket):  # not through a ProxyCommand
                transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport.set_keepalive(15)
            call.detail = f"connected ({transport.remote_version})"
            return client

    def _load_key(self, ep: Endpoint) -> paramiko.PKey | None:
        """The site's key_file, decrypted with key_passphrase when one is given."""
        if not ep.explicit_key:
            return None
        path = ep.key_files[0]
        passphrase = None
        if self.target.key_passphrase:
            passphrase = resolve_secret(self.target.key_passphrase, field="key_passphrase")
        try:
            # from_path hands the password to cryptography, which wants bytes
            return paramiko.PKey.from_path(path, password=passphrase.encode() if passphrase else None)
        except FileNotFoundError:
            raise AuthFailed(self.name, f"key file {path} does not exist") from None
        except (paramiko.SSHException, ValueError, TypeError, OSError) as exc:
            if passphrase:
                reason = f"cannot load key file {path}: wrong key_passphrase, or not a private key"
            elif isinstance(exc, (TypeError, paramiko.PasswordRequiredException)):
                reason = f"key file {path} is encrypted and no key_passphrase is set"
            else:
                reason = f"cannot load key file {path}: {redact.default().text(str(exc))}"
            raise AuthFailed(self.name, reason) from None

    def _connect_error(self, exc: Exception, ep: Endpoint, *, banner: bool) -> SourceError:
        where = f"{ep.hostname}:{ep.port}"
        if isinstance(exc, paramiko.ProxyCommandFailure):
            return Unreachable(self.name, f"the ProxyCommand for {where} failed: {exc}")
        if isinstance(exc, paramiko.BadHostKeyException):
            return HostKeyMismatch(
                self.name,
                f"host key of {where} does not match known_hosts "
                f"(got {exc.key.get_name()} {exc.key.fingerprint}): the host was reinstalled, "
                f"or this is not the host you meant",
            )
        if isinstance(exc, paramiko.AuthenticationException):
            return AuthFailed(self.name, f"authentication as {ep.user} on {where} failed ({exc})")
        if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
            codes = {getattr(e, "errno", None) for e in exc.errors.values()}
            if codes == {errno.ECONNREFUSED}:
                return Unreachable(self.name, f"connection to {where} refused")
            return Unreachable(self.name, f"cannot connect to {where}: {exc.strerror or exc}")
        if isinstance(exc, socket.gaierror):
            return Unreachable(self.name, f"cannot resolve host {ep.hostname}: {exc.strerror}")
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return TimedOut(
                self.name, f"no answer from {where} within {self.target.connect_timeout:g} s"
            )
        if isinstance(exc, paramiko.SSHException):
            msg = str(exc)
            if "not found in known_hosts" in msg:
                files = ", ".join(ep.known_hosts)
                return TLSFailed(
                    self.name, f"host key of {where} is not in known_hosts ({files}); add it first"
                )
            if not banner or "banner" in msg.lower():
                return Unreachable(
                    self.name,
                    f"{where} accepted the connection but sent no SSH banner within "
                    f"{self.target.connect_timeout:g} s ({msg})",
                )
            return Unreachable(self.name, f"SSH negotiation with {where} failed: {msg}")
        if isinstance(exc, OSError):
            return Unreachable(self.name, f"cannot connect to {where}: {exc.strerror or exc}")
        if isinstance(exc, EOFError):
            return Unreachable(self.name, f"{where} closed the connection during the handshake")
        return Unreachable(self.name, f"cannot connect to {where}: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> "SSHHost":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- commands -------------------------------------------------------------------------
    def run(self, argv: list[str], timeout: float | None = None, *,
            max_bytes: int = RUN_MAX_BYTES) -> CommandResult:
        """Run a command and collect both outputs (each kept up to ``max_bytes``).

        A non-zero exit code is returned, not raised. Running out of time raises ``TimedOut``.
        When the run shares its reads, the same command on the same host runs once.
        """
        return self.calls.once(("ssh", self.name, tuple(argv), max_bytes), lambda: self._run(argv, timeout, max_bytes))

    def _run(self, argv: list[str], timeout: float | None, max_bytes: int) -> CommandResult:
        out, err = Bounded(max_bytes), Bounded(max_bytes)
        rc, seconds, bytes_in = self._execute(
            argv, timeout, out.add, err.add, truncated=lambda: bool(out.overflow or err.overflow)
        )
        stdout, r1 = decode(bytes(out.data))
        stderr, r2 = decode(bytes(err.data))
        return CommandResult(
            argv=list(argv), rc=rc, stdout=stdout, stderr=stderr, seconds=seconds,
            bytes_in=bytes_in, truncated=bool(out.overflow or err.overflow), replaced=r1 + r2,
        )

    def stream(self, argv: list[str], on_line: Callable[[str, str], None] | None = None,
               timeout: float | None = None, max_line: int = 65536, *,
               tail_lines: int = 100,
               on_lines: Callable[[str, list[str]], None] | None = None) -> CommandResult:
        """Run a command and call ``on_line(stream, line)`` for every line as it arrives.

        ``on_lines(stream, lines)`` instead takes each batch of complete lines as it was received
        (much faster for big logs: one call per network chunk, not per line).

        ``stream`` is ``"stdout"`` or ``"stderr"``; lines have no newline, undecodable bytes are
        replaced (and counted in ``replaced``), and a line longer than ``max_line`` bytes arrives
        cut, ending in a marker that says how much was dropped. The result's stdout/stderr are
        the last ``tail_lines`` lines of each stream.

        When the run shares its reads, the same command on the same host is streamed once: the
        first caller's lines are kept (up to :data:`SHARED_STREAM_BYTES`) and replayed to the others;
        a longer output is streamed again for each caller rather than held.
        """
        args = (argv, timeout, max_line, tail_lines)
        if self.calls.shared is None:
            return self._stream(*args, on_line=on_line, on_lines=on_lines)
        kept = _Kept(SHARED_STREAM_BYTES)

        def first() -> tuple[CommandResult, list | None]:
            res = self._stream(*args, on_line=on_line, on_lines=on_lines, keep=kept)
            return res, (None if kept.overflow else kept.batches)

        (result, batches), owner = self.calls.shared.once(("stream", self.name, tuple(argv), max_line), first)
        if owner:
            return result
        if batches is None:
            return self._stream(*args, on_line=on_line, on_lines=on_lines)
        for name, batch in batches:
            if on_lines is not None:
                on_lines(name, list(batch))
            else:
                for line in batch:
                    on_line(name, line)
        return result

    def _stream(self, argv: list[str], timeout: float | None, max_line: int, tail_lines: int, *,
                on_line: Callable[[str, str], None] | None, on_lines: Callable[[str, list[str]], None] | None,
                keep: "_Kept | None" = None) -> CommandResult:
        tails = {"stdout": Tail(tail_lines), "stderr": Tail(tail_lines)}

        def deliver(name: str) -> Callable[[list[str]], None]:
            tail = tails[name]

            def lines(batch: list[str]) -> None:
                tail.extend(batch)
                if keep is not None:
                    keep.add(name, batch)
                if on_lines is not None:
                    on_lines(name, batch)
                    return
                for line in batch:
                    on_line(name, line)

            return lines

        out = LineSplitter(deliver("stdout"), max_line)
        err = LineSplitter(deliver("stderr"), max_line)

        def finish() -> None:
            out.close()
            err.close()

        rc, seconds, bytes_in = self._execute(
            argv, timeout, out.feed, err.feed, truncated=lambda: bool(out.cut or err.cut), finish=finish
        )
        stdout, stderr = tails["stdout"].text(), tails["stderr"].text()
        return CommandResult(
            argv=list(argv), rc=rc, stdout=stdout, stderr=stderr, seconds=seconds,
            bytes_in=bytes_in,
            truncated=tails["stdout"].dropped or tails["stderr"].dropped or bool(out.cut or err.cut),
            replaced=out.replaced + err.replaced, stdout_lines=out.lines,
            stderr_lines=err.lines, cut_lines=out.cut + err.cut,
        )

    def _execute(self, argv: list[str], timeout: float | None,
                 on_out: Callable[[bytes], None], on_err: Callable[[bytes], None], *,
                 truncated: Callable[[], bool], finish: Callable[[], None] = lambda: None,
                 ) -> tuple[int, float, int]:
        """Run ``argv`` remotely, feeding raw chunks to ``on_out``/``on_err``; (rc, secs, bytes)."""
        argv = list(argv)
        timeout = float(timeout or self.target.command_timeout)
        command = remote_command(argv, timeout)
        shown = shlex.join(redact.mask_args(argv))
        transport = self._transport()
        with self.calls.record(self.name, shown) as call:
            call.bytes_out = len(command.encode())
            start = time.monotonic()
            try:
                chan = transport.open_session(timeout=self.target.connect_timeout)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                self.close()
                raise Unreachable(self.name, f"cannot open a session: {exc or type(exc).__name__}") from None
            received = 0
            try:
                wake = chan.fileno()  # readable whenever stdout or stderr has data, and at EOF
                chan.exec_command(command)
                deadline = start + timeout + LOCAL_GRACE
                while True:
                    received += _drain(chan, on_out, on_err)
                    done = chan.exit_status_ready() and (chan.eof_received or chan.closed)
                    if done and not (chan.recv_ready() or chan.recv_stderr_ready()):
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimedOut(self.name, f"{shown} did not finish within {timeout:g} s")
                    if not done:
                        select.select([wake], [], [], min(left, 0.25))
                rc = chan.recv_exit_status()
            except _ConsumerFailed as wrapped:  # the caller's on_line raised: theirs, re-raise it
                raise wrapped.__cause__ from None
            except (paramiko.SSHException, OSError, EOFError) as exc:
                self.close()
                raise Unreachable(
                    self.name, f"the connection failed during the command: {exc or type(exc).__name__}"
                ) from None
            finally:
                chan.close()
                call.bytes_in = received
                call.truncated = truncated()
            if rc == -1 and not transport.is_active():
                self.close()
                raise Unreachable(self.name, "the connection closed before the command finished")
            finish()
            call.truncated = truncated()
            seconds = round(time.monotonic() - start, 4)
            if rc == TIMEOUT_RC:
                raise TimedOut(
                    self.name,
                    f"{shown} did not finish within {timeout:g} s (stopped by timeout)",
                )
            call.detail = f"rc={rc}"
            return rc, seconds, received


class _Kept:
    """The batches of lines a shared stream delivered, kept for the callers after the first, up to a size."""

    def __init__(self, limit: int):
        self.limit = limit
        self.size = 0
        self.overflow = False
        self.batches: list[tuple[str, tuple[str, ...]]] = []

    def add(self, stream: str, batch: list[str]) -> None:
        if self.overflow:
            return
        self.size += sum(len(line) for line in batch)
        if self.size > self.limit:
            self.overflow, self.batches = True, []
            return
        self.batches.append((stream, tuple(batch)))


class _ConsumerFailed(Exception):
    """Carries an exception raised by the caller's callback past the transport error handling."""


def _drain(chan: paramiko.Channel, on_out: Callable[[bytes], None],
           on_err: Callable[[bytes], None]) -> int:
    """Read what is waiting on stdout and stderr (without blocking); the number of bytes read."""
    got = 0
    while True:
        progressed = False
        for ready, recv, sink in ((chan.recv_ready, chan.recv, on_out),
                                  (chan.recv_stderr_ready, chan.recv_stderr, on_err)):
            if ready():
                data = recv(CHUNK)
                got += len(data)
                progressed = True
                try:
                    sink(data)
                except Exception as exc:
                    raise _ConsumerFailed() from exc
        if not progressed or got >= 16 * CHUNK:  # come back to check the deadline now and then
            return got
