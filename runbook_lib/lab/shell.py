"""The shell of a lab host: what an SSH exec request runs on the provider LXC or the Omni VM.

A command line is split the way ``sh`` splits it (quotes, backslashes) into simple commands joined
by ``&&``, ``||`` and ``;``. Each simple command is a builtin answering from the host's model:

* ``timeout [-k DUR] [-s SIG] [--preserve-status] DURATION CMD...``: GNU semantics, exit 124;
* ``docker ...`` and ``docker compose ...`` (see :mod:`.docker_cli`);
* ``cat``, ``ip [-j] addr``, ``hostname``, ``cd``, ``sh -c``, ``echo``, ``sleep``, ``true``, ``false``;
* ``curl`` for probes made *from* the host: the host's ``probes`` say, per kind of target (the
  twin's ``ctx.targets``), whether the connection really happens (``pass``) or fails the way curl
  reports a refused port, a timeout, a DNS failure or an untrusted certificate.

Anything else is ``sh: 1: NAME: not found`` (127). Pipes and redirections are refused with a
message that says so: the runbooks never send them. A host with ``hang: true`` accepts every
command and never answers, until ``timeout`` kills it or the client closes the channel.

Output goes through :class:`Output`, which buffers and awaits the SSH channel's flow control, so a
command streaming hundreds of megabytes holds one chunk in memory at a time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import posixpath
import re
import ssl
import time
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable
from urllib.parse import urlsplit

from . import docker_cli

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


# --- small builtins ------------------------------------------------------------------------


@builtin("docker")
async def _docker(argv: list[str], sh: Session) -> int:
    return await docker_cli.main(argv[1:], sh)


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


def _abspath(sh: Session, path: str) -> str:
    return posixpath.normpath(posixpath.join(sh.cwd, path))


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
    target = _abspath(sh, argv[1]) if len(argv) > 1 else "/root"
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
        content = files.get(_abspath(sh, path))
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


# --- ip ------------------------------------------------------------------------------------

_FOREVER = 4294967295


def _interfaces(sh: Session) -> list[dict]:
    """iproute2's view of the host: lo plus one ethernet interface carrying the model's addresses."""
    lo = {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "mtu": 65536,
          "qdisc": "noqueue", "operstate": "UNKNOWN", "group": "default", "txqlen": 1000,
          "link_type": "loopback", "address": "00:00:00:00:00:00", "broadcast": "00:00:00:00:00:00",
          "addr_info": [
              {"family": "inet", "local": "127.0.0.1", "prefixlen": 8, "scope": "host", "label": "lo",
               "valid_life_time": _FOREVER, "preferred_life_time": _FOREVER},
              {"family": "inet6", "local": "::1", "prefixlen": 128, "scope": "host",
               "valid_life_time": _FOREVER, "preferred_life_time": _FOREVER}]}
    name = sh.host.get("interface", "eth0")
    crc = zlib.crc32(sh.name.encode())
    mac = "bc:24:11:" + ":".join(f"{(crc >> s) & 0xFF:02x}" for s in (16, 8, 0))  # Proxmox's OUI
    infos = []
    for text in sh.host.get("addresses") or []:
        iface = ipaddress.ip_interface(text)
        info = {"family": "inet" if iface.version == 4 else "inet6", "local": str(iface.ip),
                "prefixlen": iface.network.prefixlen}
        if iface.version == 4 and iface.network.prefixlen < 31:
            info["broadcast"] = str(iface.network.broadcast_address)
        info["scope"] = "global"
        if iface.version == 4:
            info["label"] = name
        info.update(valid_life_time=_FOREVER, preferred_life_time=_FOREVER)
        infos.append(info)
    eth = {"ifindex": 2, "ifname": name, "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"], "mtu": 1500,
           "qdisc": "noqueue", "operstate": "UP", "group": "default", "txqlen": 1000, "link_type": "ether",
           "address": mac, "broadcast": "ff:ff:ff:ff:ff:ff", "addr_info": infos}
    return [lo, eth]


def _ip_text(ifaces: list[dict]) -> str:
    lines = []
    for i in ifaces:
        state = f" state {i['operstate']}"
        lines.append(f"{i['ifindex']}: {i['ifname']}: <{','.join(i['flags'])}> mtu {i['mtu']} qdisc {i['qdisc']}"
                     f"{state} group {i['group']} qlen {i['txqlen']}")
        lines.append(f"    link/{i['link_type']} {i['address']} brd {i['broadcast']}")
        for a in i["addr_info"]:
            brd = f" brd {a['broadcast']}" if "broadcast" in a else ""
            label = f" {a['label']}" if "label" in a else ""
            lines.append(f"    {a['family']} {a['local']}/{a['prefixlen']}{brd} scope {a['scope']}{label}")
            lines.append("       valid_lft forever preferred_lft forever")
    return "\n".join(lines) + "\n"


@builtin("ip")
async def _ip(argv: list[str], sh: Session) -> int:
    args = argv[1:]
    as_json = pretty = False
    family = None
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in ("-j", "-json", "--json"):
            as_json = True
        elif flag in ("-p", "-pretty", "--pretty"):
            pretty = True
        elif flag in ("-4", "-6"):
            family = "inet" if flag == "-4" else "inet6"
        else:
            await sh.io.err(f'Option "{flag}" is unknown, try "ip -help".\n')
            return 255
    obj = args.pop(0) if args else "help"
    if not "address".startswith(obj) and obj != "addr":
        if obj == "help":
            await sh.io.err("Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }\n")
            return 0
        await sh.io.err(f'Object "{obj}" is unknown, try "ip help".\n')
        return 255
    if args and args[0] in ("show", "list", "ls", "lst", "sh"):
        args.pop(0)
    ifaces = _interfaces(sh)
    if len(args) >= 2 and args[0] == "dev":
        ifaces = [i for i in ifaces if i["ifname"] == args[1]]
        if not ifaces:
            await sh.io.err(f'Device "{args[1]}" does not exist.\n')
            return 1
    if family:
        ifaces = [dict(i, addr_info=[a for a in i["addr_info"] if a["family"] == family]) for i in ifaces]
    if as_json:
        text = json.dumps(ifaces, indent=4) if pretty else json.dumps(ifaces, separators=(",", ":"))
        await sh.io.out(text + "\n")
    else:
        await sh.io.out(_ip_text(ifaces))
    return 0


# --- curl ----------------------------------------------------------------------------------

CURL_VERSION = "7.88.1"
PROBE_MODES = ("pass", "refused", "timeout", "dns", "untrusted")
_CURL_TRY = "curl: try 'curl --help' or 'curl --manual' for more information\n"
_CA_HELP = (
    "More details here: https://curl.se/docs/sslcerts.html\n\n"
    "curl failed to verify the legitimacy of the server and therefore could not\n"
    "establish a secure connection to it. To learn more about this situation and\n"
    "how to fix it, please visit the web page mentioned above.\n"
)
_CURL_FLAGS = {"-s": "silent", "--silent": "silent", "-S": "show_error", "--show-error": "show_error",
               "-k": "insecure", "--insecure": "insecure", "-I": "head", "--head": "head", "-f": "fail",
               "--fail": "fail", "--fail-with-body": "fail", "-L": "location", "--location": "location",
               "-i": "include", "--include": "include", "-v": "verbose", "--verbose": "verbose",
               "-4": "ipv4", "--ipv4": "ipv4", "-6": "ipv6", "--ipv6": "ipv6", "--compressed": "compressed",
               "--no-progress-meter": "no_progress", "-N": "no_buffer", "--no-buffer": "no_buffer"}
_CURL_VALUES = {"-o": "output", "--output": "output", "-w": "write_out", "--write-out": "write_out",
                "-m": "max_time", "--max-time": "max_time", "--connect-timeout": "connect_timeout",
                "--cacert": "cacert", "-H": "header", "--header": "header", "-X": "request",
                "--request": "request", "-A": "user_agent", "--user-agent": "user_agent", "--url": "url",
                "--noproxy": "noproxy", "--retry": "retry"}
# real curl options whose effect the twin does not reproduce: refused rather than ignored
_CURL_UNSIMULATED = {"-d", "--data", "--data-raw", "--json", "-F", "--form", "-u", "--user", "--cert", "--key",
                     "--resolve", "--connect-to", "-x", "--proxy", "-T", "--upload-file", "-O", "--remote-name",
                     "-C", "--continue-at", "-K", "--config", "--capath", "--http2", "--http3"}


class CurlUsage(Exception):
    pass


@dataclass
class CurlRun:
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

    def seconds(self, key: str) -> float | None:
        if key not in self.values:
            return None
        try:
            value = float(self.values[key])
        except ValueError:
            raise CurlUsage(f"curl: option {self.spelled[key]}: expected a proper numerical parameter\n"
                            f"{_CURL_TRY}") from None
        return value if value > 0 else None


def _curl_args(argv: list[str]) -> CurlRun:
    run = CurlRun()
    args = list(argv)
    while args:
        a = args.pop(0)
        if a.startswith("--") or (a.startswith("-") and len(a) == 2):
            names = [a]
        elif a.startswith("-") and len(a) > 2:
            names = []
            for j, ch in enumerate(a[1:], start=1):
                names.append("-" + ch)
                if "-" + ch in _CURL_VALUES:
                    if j + 1 < len(a):
                        args.insert(0, a[j + 1:])
                    break
        else:
            if run.url:
                raise CurlUsage("curl: the lab twin's curl takes one URL\n")
            run.url = a
            continue
        for name in names:
            if name in _CURL_FLAGS:
                run.flags.add(_CURL_FLAGS[name])
            elif name in _CURL_VALUES:
                if not args:
                    raise CurlUsage(f"curl: option {name}: requires parameter\n{_CURL_TRY}")
                value = args.pop(0)
                key = _CURL_VALUES[name]
                if key == "header":
                    run.headers.append(value)
                elif key == "url":
                    run.url = value
                else:
                    run.values[key] = value
                    run.spelled[key] = name
            elif name in _CURL_UNSIMULATED:
                raise CurlUsage(f"curl: option {name}: not simulated by the lab twin's curl\n")
            else:
                raise CurlUsage(f"curl: option {name}: is unknown\n{_CURL_TRY}")
    if not run.url:
        raise CurlUsage(f"curl: no URL specified!\n{_CURL_TRY}")
    return run


class _CurlError(Exception):
    def __init__(self, rc: int, message: str):
        super().__init__(message)
        self.rc = rc
        self.message = message


def _ms(since: float) -> int:
    return int((time.monotonic() - since) * 1000)


def _ssl_context(run: CurlRun, sh: Session) -> ssl.SSLContext:
    if "insecure" in run.flags:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    cacert = run.values.get("cacert")
    if cacert is None:  # the host's system store: it trusts the twin's CA (scenarios use `untrusted`)
        return ssl.create_default_context(cafile=str(sh.ctx.ca_file))
    pem = (sh.host.get("files") or {}).get(_abspath(sh, cacert))
    if pem is None:
        raise _CurlError(77, f"error setting certificate file: {cacert}")
    try:
        return ssl.create_default_context(cadata=pem)
    except ssl.SSLError:
        raise _CurlError(77, f"error setting certificate file: {cacert}") from None


async def _read_response(reader: asyncio.StreamReader, run: CurlRun, head_only: bool) -> None:
    status_line = await reader.readline()
    if not status_line:
        raise _CurlError(52, "Empty reply from server")
    head = bytearray(status_line)
    parts = status_line.decode("latin-1").split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise _CurlError(1, "Received HTTP/0.9 when not allowed")
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


async def _transfer(run: CurlRun, sh: Session, host: str, port: int, scheme: str, target: str) -> None:
    """Really perform the request from the twin: connect, TLS, one HTTP/1.1 exchange."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise _CurlError(6, f"Could not resolve host: {host}") from None
    if not ip.is_loopback:  # the twin only ever connects on loopback
        raise _CurlError(7, f"Failed to connect to {host} port {port} after 0 ms: Couldn't connect to server")
    run.remote = (str(ip), port)
    max_time = run.seconds("max_time")
    connect_limit = min(filter(None, [max_time, run.seconds("connect_timeout"), 300.0]))
    start = run.started
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(str(ip), port), connect_limit)
    except (asyncio.TimeoutError, TimeoutError):
        raise _CurlError(28, f"Connection timed out after {_ms(start)} milliseconds") from None
    except OSError:
        raise _CurlError(7, f"Failed to connect to {host} port {port} after {_ms(start)} ms: "
                            "Couldn't connect to server") from None
    try:
        if scheme == "https":
            tls = _ssl_context(run, sh)
            remaining = connect_limit - (time.monotonic() - start)
            try:
                await asyncio.wait_for(writer.start_tls(tls, server_hostname=host.strip("[]")), max(remaining, 0.001))
            except (asyncio.TimeoutError, TimeoutError):
                raise _CurlError(28, f"Connection timed out after {_ms(start)} milliseconds") from None
            except ssl.SSLCertVerificationError as exc:
                if exc.verify_code == 62:  # X509_V_ERR_HOSTNAME_MISMATCH
                    raise _CurlError(60, "SSL: no alternative certificate subject name matches target host "
                                         f"name '{host}'") from None
                raise _CurlError(60, f"SSL certificate problem: {exc.verify_message}") from None
            except (ssl.SSLError, ConnectionError) as exc:
                raise _CurlError(35, f"OpenSSL SSL_connect: {getattr(exc, 'reason', None) or 'SSL_ERROR_SYSCALL'}"
                                     f" in connection to {host}:{port} ") from None
        run.t_connect = time.monotonic() - start
        method = run.values.get("request") or ("HEAD" if "head" in run.flags else "GET")
        default_port = 443 if scheme == "https" else 80
        host_header = host if port == default_port else f"{host}:{port}"
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}",
                 f"User-Agent: {run.values.get('user_agent', 'curl/' + CURL_VERSION)}", "Accept: */*"]
        lines += run.headers
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        remaining = (max_time - (time.monotonic() - start)) if max_time else None
        try:
            await asyncio.wait_for(_read_response(reader, run, method == "HEAD"), remaining)
        except (asyncio.TimeoutError, TimeoutError):
            raise _CurlError(28, f"Operation timed out after {_ms(start)} milliseconds with "
                                 f"{len(run.body)} bytes received") from None
        except asyncio.IncompleteReadError:
            raise _CurlError(18, "transfer closed with outstanding read data remaining") from None
        except ConnectionResetError:
            raise _CurlError(56, "Recv failure: Connection reset by peer") from None
    finally:
        writer.close()


async def _simulate(mode: str, run: CurlRun, host: str, port: int, scheme: str) -> None:
    """A probe whose outcome the scenario fixed: fail the way curl fails."""
    if mode == "refused":
        raise _CurlError(7, f"Failed to connect to {host} port {port} after 0 ms: Couldn't connect to server")
    if mode == "dns":
        raise _CurlError(6, f"Could not resolve host: {host}")
    if mode == "timeout":
        limits = [x for x in (run.seconds("max_time"), run.seconds("connect_timeout")) if x]
        if limits:
            await asyncio.sleep(min(limits))
        else:
            await asyncio.Event().wait()  # curl's 300 s connect timeout: `timeout` kills it first
        raise _CurlError(28, f"Connection timed out after {_ms(run.started)} milliseconds")
    if mode == "untrusted" and scheme == "https" and "insecure" not in run.flags:
        raise _CurlError(60, "SSL certificate problem: unable to get local issuer certificate")
    raise AssertionError(f"no simulation for probe mode {mode!r}")


_WRITE_OUT_VAR = re.compile(r"%\{([a-z_]+)\}|%%|\\[nrt\\]")


async def _write_out(run: CurlRun, sh: Session) -> None:
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
        "method": run.values.get("request") or ("HEAD" if "head" in run.flags else "GET"),
        "http_version": "1.1" if run.status else "0",
    }
    out = []
    for piece in re.split(r"(%\{[a-z_]+\}|%%|\\[nrt\\])", fmt):
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


def _progress(run: CurlRun) -> str:
    size = len(run.body)
    pct = 100 if run.status and run.rc == 0 else 0
    return ("  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current\n"
            "                                 Dload  Upload   Total   Spent    Left  Speed\n"
            f"\r{pct:>3} {size:>5}  {pct:>3} {size:>5}    0     0      0      0 --:--:-- --:--:-- --:--:--     0\n")


@builtin("curl")
async def _curl(argv: list[str], sh: Session) -> int:
    try:
        run = _curl_args(argv[1:])
        for key in ("max_time", "connect_timeout"):
            run.seconds(key)  # a non-number is a usage error before anything is sent
    except CurlUsage as exc:
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
                raise _CurlError(22, f"The requested URL returned error: {run.status}")
        except _CurlError as exc:
            run.rc, run.error = exc.rc, exc.message
    if run.rc == 0:
        output = run.values.get("output")
        data = (run.head_bytes if ("head" in run.flags or "include" in run.flags) else b"")
        data += b"" if "head" in run.flags else run.body
        if output is None:
            await sh.io.out(data)
        elif output != "/dev/null":
            sh.host.setdefault("files", {})[_abspath(sh, output)] = data.decode("utf-8", "replace")
    quiet = "silent" in run.flags
    if not quiet and "no_progress" not in run.flags:
        await sh.io.err(_progress(run))
    await _write_out(run, sh)
    if run.rc and (not quiet or "show_error" in run.flags):
        await sh.io.err(f"curl: ({run.rc}) {run.error}\n" + (_CA_HELP if run.rc == 60 else ""))
    return run.rc
