"""The shell of a lab host: what an SSH exec request runs on the provider LXC or the Omni VM.

A command line is split the way ``sh`` splits it (quotes, backslashes) into simple commands joined
by ``&&``, ``||`` and ``;``. Each simple command is a builtin answering from the host's model:

* ``timeout [-k DUR] [-s SIG] [--preserve-status] DURATION CMD...``: GNU semantics, exit 124;
* ``docker ...`` and ``docker compose ...`` (see :mod:`.docker_cli` and :mod:`.compose_cli`);
* ``curl`` for probes made *from* the host (see :mod:`.curl`), ``nc -z`` port probes (:mod:`.netcat`)
  and ``ip [-j] addr`` (:mod:`.iproute`);
* ``cat``, ``hostname``, ``cd``, ``sh -c``, ``echo``, ``sleep``, ``true``, ``false``.

Anything else is ``sh: 1: NAME: not found`` (127). Pipes and redirections are refused with a
message that says so: the runbooks never send them. A host with ``hang: true`` accepts every
command and never answers, until ``timeout`` kills it or the client closes the channel.

Output goes through :class:`Output`, which buffers and awaits the SSH channel's flow control, so a
command streaming hundreds of megabytes holds one chunk in memory at a time.
"""

from __future__ import annotations

import asyncio
import posixpath
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

from . import curl, docker_cli, iproute, netcat

if TYPE_CHECKING:
    from .model import TwinContext

CHUNK = 64 * 1024
Sink = Callable[[bytes], Awaitable[None]]


class Output:
    """A command's stdout and stderr: buffered, handed to the sinks a chunk at a time."""

    def __init__(self, stdout: Sink, stderr: Sink, chunk: int = CHUNK):
        self._sinks = {"stdout": stdout, "stderr": stderr}
        self._bufs = {"stdout": bytearray(), "stderr": bytearray()}
        self._chunk = chunk
        self._last = "stdout"

    async def write(self, stream: str, data: str | bytes) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        if stream != self._last:  # keep the two streams in the order they were written
            await self._flush(self._last)
            self._last = stream
        buf = self._bufs[stream]
        buf += data
        if len(buf) >= self._chunk:
            await self._flush(stream)

    async def out(self, data: str | bytes) -> None:
        await self.write("stdout", data)

    async def err(self, data: str | bytes) -> None:
        await self.write("stderr", data)

    async def _flush(self, stream: str) -> None:
        buf = self._bufs[stream]
        if buf:
            data = bytes(buf)
            buf.clear()
            await self._sinks[stream](data)

    async def flush(self) -> None:
        await self._flush(self._last)
        await self._flush("stderr" if self._last == "stdout" else "stdout")


class Capture:
    """Sinks that keep everything (for tests and for callers without a channel)."""

    def __init__(self) -> None:
        self.stdout = bytearray()
        self.stderr = bytearray()

    async def _out(self, data: bytes) -> None:
        self.stdout += data

    async def _err(self, data: bytes) -> None:
        self.stderr += data

    def output(self) -> Output:
        return Output(self._out, self._err)


@dataclass
class Session:
    """What a command sees: which host it runs on, its model, the twin, and where output goes."""

    name: str  # the host's role in the twin: "provider", "omni"
    host: dict  # the host's model; docker writes change it
    ctx: "TwinContext"
    io: Output
    cwd: str = "/root"

    def abspath(self, path: str) -> str:
        """``path`` made absolute against the working directory, normalised."""
        return posixpath.normpath(posixpath.join(self.cwd, path))


Builtin = Callable[[list[str], Session], Awaitable[int]]
BUILTINS: dict[str, Builtin] = {}
_BIN_DIRS = ("/usr/local/sbin/", "/usr/local/bin/", "/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/")


def builtin(*names: str):
    def register(fn: Builtin) -> Builtin:
        for name in names:
            BUILTINS[name] = fn
        return fn

    return register


# --- parsing -----------------------------------------------------------------------------------

_LIST_OPS = ("&&", "||", ";")
_OPERATOR_CHARS = "&|;<>()"


class ShellSyntaxError(ValueError):
    pass


def tokenize(line: str) -> list[tuple[str, bool]]:
    """Split a command line into (word, is_operator) the way sh does: quotes, backslashes, operators."""
    tokens: list[tuple[str, bool]] = []
    word: list[str] = []
    in_word = False
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c in " \t\n":
            if in_word:
                tokens.append(("".join(word), False))
                word, in_word = [], False
            i += 1
        elif c == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("Unterminated quoted string")
            word.append(line[i + 1:end])
            in_word, i = True, end + 1
        elif c == '"':
            i += 1
            while True:
                if i >= n:
                    raise ShellSyntaxError("Unterminated quoted string")
                if line[i] == '"':
                    break
                if line[i] == "\\" and i + 1 < n and line[i + 1] in '"\\$`\n':
                    i += 1
                word.append(line[i])
                i += 1
            in_word, i = True, i + 1
        elif c == "\\":
            if i + 1 < n:
                word.append(line[i + 1])
            in_word, i = True, i + 2
        elif c in _OPERATOR_CHARS:
            if in_word:
                tokens.append(("".join(word), False))
                word, in_word = [], False
            op = line[i:i + 2] if line[i:i + 2] in ("&&", "||", ">>", "<<", ">&", "<&", "|&", "&>") else c
            tokens.append((op, True))
            i += len(op)
        else:
            word.append(c)
            in_word, i = True, i + 1
    if in_word:
        tokens.append(("".join(word), False))
    return tokens


def parse(line: str) -> list[tuple[str, list[str]]]:
    """A list of (operator joining it to the previous command, argv)."""
    chain: list[tuple[str, list[str]]] = []
    op, argv = ";", []
    for token, is_op in tokenize(line):
        if not is_op:
            argv.append(token)
            continue
        if token not in _LIST_OPS:
            raise ShellSyntaxError(f"'{token}': pipes and redirections are not simulated by the lab twin")
        if not argv:
            raise ShellSyntaxError(f'"{token}" unexpected')
        chain.append((op, argv))
        op, argv = token, []
    if argv:
        chain.append((op, argv))
    elif op in ("&&", "||"):
        raise ShellSyntaxError("end of file unexpected")
    return chain


def _unwrap(argv: list[str]) -> list[list[str]]:
    """The commands an argv runs, looking through ``timeout`` and ``sh -c``."""
    if not argv:
        return []
    name = posixpath.basename(argv[0])
    if name == "timeout":
        try:
            _, rest = _timeout_options(argv[1:])
        except ValueError:
            return []
        return _unwrap(rest[1:])
    if name in ("sh", "bash") and len(argv) > 2 and argv[1] == "-c":
        try:
            return [cmd for _, a in parse(argv[2]) for cmd in _unwrap(a)]
        except ShellSyntaxError:
            return []
    return [argv]


def is_write(line: str) -> bool:
    """True when the command line changes the host (``docker restart``, ``compose up`` ...)."""
    try:
        chain = parse(line)
    except ShellSyntaxError:
        return False
    for _, argv in chain:
        for cmd in _unwrap(argv):
            if posixpath.basename(cmd[0]) == "docker" and docker_cli.is_write(cmd[1:]):
                return True
    return False


# --- running -----------------------------------------------------------------------------------


async def run(line: str, session: Session) -> int:
    """Run a command line; its exit status is returned, its output written to ``session.io``."""
    try:
        rc = await _run_line(line, session)
    finally:
        await session.io.flush()
    return rc


async def capture(line: str, *, name: str, host: dict, ctx: "TwinContext") -> tuple[int, str, str]:
    """Run a command line without SSH: (exit status, stdout, stderr)."""
    sinks = Capture()
    rc = await run(line, Session(name=name, host=host, ctx=ctx, io=sinks.output()))
    return rc, sinks.stdout.decode("utf-8", "replace"), sinks.stderr.decode("utf-8", "replace")


async def _run_line(line: str, session: Session) -> int:
    try:
        chain = parse(line)
    except ShellSyntaxError as exc:
        await session.io.err(f"sh: 1: Syntax error: {exc}\n")
        return 2
    rc = 0
    for op, argv in chain:
        if (op == "&&" and rc != 0) or (op == "||" and rc == 0):
            continue
        rc = await run_argv(argv, session)
    return rc


async def run_argv(argv: list[str], session: Session) -> int:
    name = argv[0]
    if name.startswith(_BIN_DIRS):
        name = posixpath.basename(name)
    if session.host.get("hang") and name != "timeout":
        await asyncio.Event().wait()  # the host accepted the command and never answers
    fn = BUILTINS.get(name)
    if fn is None:
        await session.io.err(f"sh: 1: {argv[0]}: not found\n")
        return 127
    return await fn(argv, session)


# --- GNU timeout -------------------------------------------------------------------------------

_SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12, "ALRM": 14, "TERM": 15}
_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)([smhd]?)$")


def parse_duration(text: str) -> float:
    """A GNU ``sleep``/``timeout`` interval: a number with an optional s, m, h or d suffix."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _timeout_options(args: list[str]) -> tuple[dict, list[str]]:
    opts = {"signal": "TERM", "kill_after": None, "preserve": False, "verbose": False}
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        a = args[i]
        if a == "--":
            i += 1
            break
        if a in ("-k", "--kill-after", "-s", "--signal"):
            if i + 1 >= len(args):
                raise ValueError(f"option requires an argument -- '{a.lstrip('-')[0]}'")
            opts["kill_after" if a in ("-k", "--kill-after") else "signal"] = args[i + 1]
            i += 2
            continue
        if a.startswith(("--kill-after=", "--signal=")):
            key, _, value = a[2:].partition("=")
            opts["kill_after" if key == "kill-after" else "signal"] = value
        elif a.startswith(("-k", "-s")) and len(a) > 2:
            opts["kill_after" if a[1] == "k" else "signal"] = a[2:]
        elif a == "--preserve-status":
            opts["preserve"] = True
        elif a in ("-v", "--verbose"):
            opts["verbose"] = True
        elif a == "--foreground":
            pass
        else:
            raise ValueError(f"unrecognized option '{a}'" if a.startswith("--") else f"invalid option -- '{a[1:2]}'")
        i += 1
    return opts, args[i:]


@builtin("timeout")
async def _timeout(argv: list[str], sh: Session) -> int:
    usage = "Try 'timeout --help' for more information.\n"
    try:
        opts, rest = _timeout_options(argv[1:])
    except ValueError as exc:
        await sh.io.err(f"timeout: {exc}\n{usage}")
        return 125
    if len(rest) < 2:
        await sh.io.err(f"timeout: missing operand\n{usage}")
        return 125
    signame = str(opts["signal"]).upper().removeprefix("SIG")
    signum = int(signame) if signame.isdigit() else _SIGNALS.get(signame)
    if signum is None:
        await sh.io.err(f"timeout: {opts['signal']}: invalid signal\n{usage}")
        return 125
    try:
        seconds = parse_duration(rest[0])
        if opts["kill_after"] is not None:
            parse_duration(opts["kill_after"])
    except ValueError as exc:
        await sh.io.err(f"timeout: invalid time interval '{exc}'\n{usage}")
        return 125
    command = rest[1:]
    name = posixpath.basename(command[0]) if command[0].startswith(_BIN_DIRS) else command[0]
    if name not in BUILTINS:
        await sh.io.err(f"timeout: failed to run command '{command[0]}': No such file or directory\n")
        return 127
    if seconds == 0:
        return await run_argv(command, sh)
    try:
        return await asyncio.wait_for(run_argv(command, sh), seconds)
    except (asyncio.TimeoutError, TimeoutError):
        if opts["verbose"]:
            await sh.io.err(f"timeout: sending signal {signame} to command '{command[0]}'\n")
        return 128 + signum if opts["preserve"] else 124


# --- builtins ------------------------------------------------------------------------------


@builtin("docker")
async def _docker(argv: list[str], sh: Session) -> int:
    return await docker_cli.main(argv[1:], sh)


@builtin("curl")
async def _curl(argv: list[str], sh: Session) -> int:
    return await curl.main(argv[1:], sh)


@builtin("nc", "netcat")
async def _nc(argv: list[str], sh: Session) -> int:
    return await netcat.main(argv[1:], sh)


@builtin("ip")
async def _ip(argv: list[str], sh: Session) -> int:
    return await iproute.main(argv[1:], sh)


@builtin("true")
async def _true(argv: list[str], sh: Session) -> int:
    return 0


@builtin("false")
async def _false(argv: list[str], sh: Session) -> int:
    return 1


@builtin("echo")
async def _echo(argv: list[str], sh: Session) -> int:
    args, end = argv[1:], "\n"
    if args[:1] == ["-n"]:
        args, end = args[1:], ""
    await sh.io.out(" ".join(args) + end)
    return 0


@builtin("sleep")
async def _sleep(argv: list[str], sh: Session) -> int:
    if len(argv) < 2:
        await sh.io.err("sleep: missing operand\nTry 'sleep --help' for more information.\n")
        return 1
    try:
        seconds = sum(parse_duration(a) for a in argv[1:])
    except ValueError as exc:
        await sh.io.err(f"sleep: invalid time interval '{exc}'\nTry 'sleep --help' for more information.\n")
        return 1
    await asyncio.sleep(seconds)
    return 0


def _directories(host: dict) -> set[str]:
    """The directories a host has: standard ones, those holding its files, its compose projects."""
    dirs = {"/", "/root", "/tmp", "/etc", "/opt", "/var", "/usr", "/home", "/srv", "/run"}
    starts = [posixpath.dirname(posixpath.normpath(p)) for p in (host.get("files") or {})]
    starts += [(c.get("compose") or {}).get("working_dir") for c in (host.get("containers") or {}).values()]
    for d in filter(None, starts):
        d = posixpath.normpath(d)
        while d not in dirs:
            dirs.add(d)
            d = posixpath.dirname(d)
    return dirs


@builtin("cd")
async def _cd(argv: list[str], sh: Session) -> int:
    target = sh.abspath(argv[1]) if len(argv) > 1 else "/root"
    if target not in _directories(sh.host):
        await sh.io.err(f"sh: 1: cd: can't cd to {argv[1]}\n")
        return 2
    sh.cwd = target
    return 0


@builtin("sh", "bash")
async def _sh(argv: list[str], sh: Session) -> int:
    if len(argv) < 3 or argv[1] != "-c":
        await sh.io.err(f"{argv[0]}: the lab twin runs only '{argv[0]} -c COMMAND'\n")
        return 2
    cwd = sh.cwd
    try:
        return await _run_line(argv[2], sh)
    finally:
        sh.cwd = cwd


@builtin("cat")
async def _cat(argv: list[str], sh: Session) -> int:
    files = sh.host.get("files") or {}
    rc = 0
    for path in argv[1:]:
        content = files.get(sh.abspath(path))
        if content is None:
            await sh.io.err(f"cat: {path}: No such file or directory\n")
            rc = 1
        else:
            await sh.io.out(content)
    return rc


@builtin("hostname")
async def _hostname(argv: list[str], sh: Session) -> int:
    if "-I" in argv[1:] or "--all-ip-addresses" in argv[1:]:
        addrs = [a.split("/")[0] for a in sh.host.get("addresses") or []]
        await sh.io.out("".join(f"{a} " for a in addrs) + "\n")
    else:
        await sh.io.out(f"{sh.host.get('hostname', sh.name)}\n")
    return 0
