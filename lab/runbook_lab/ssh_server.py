"""The lab twin's SSH hosts: a real SSH server (asyncssh) in front of each host's shell.

Each host gets its own listener on loopback and its own host key, so clients check host keys
against a known_hosts file exactly as they would in production. Only public-key authentication is
offered; any user name is accepted when the key is one of the authorized keys. Exec requests are
run by :mod:`.shell`: stdout and stderr travel on their own streams, the exit status is sent, and
output is written in chunks that wait for the channel's window, so a 200 MB ``docker logs``
streams with bounded memory on both sides. When the client closes the channel the command is
cancelled. Every command is recorded in the twin's request log, then waits the twin's ``latency.ssh``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from . import shell
from .latency import pause
from .ssh_lib import asyncssh

if TYPE_CHECKING:
    from .model import RequestLog, TwinContext

# asyncssh logs every connection at INFO; the request log is the twin's record
logging.getLogger("asyncssh").setLevel(logging.WARNING)


class _HostAuth(asyncssh.SSHServer):
    """Public-key authentication against a fixed key list; connection bookkeeping."""

    def __init__(self, allowed: set[bytes], connections: set):
        self._allowed = allowed
        self._connections = connections
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._connections.add(conn)
        sock = conn.get_extra_info("socket")
        if sock is not None:  # exec round trips of a few ms instead of Nagle's 40
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return key.public_data in self._allowed

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False


class SSHHostServer:
    """One listening SSH host of the twin."""

    def __init__(self, name: str, acceptor: asyncssh.SSHAcceptor, host_key_line: str, connections: set):
        self.name = name
        self._acceptor = acceptor
        self._connections = connections
        self.host_key_line = host_key_line  # "ssh-ed25519 AAAA..." for known_hosts
        self.port: int = acceptor.get_port()

    async def stop(self) -> None:
        self._acceptor.close()
        for conn in list(self._connections):
            conn.close()
        await self._acceptor.wait_closed()
        for conn in list(self._connections):
            await conn.wait_closed()


def _load_host_key(path: Path) -> asyncssh.SSHKey:
    """The host key at ``path``; a new ed25519 key is written there when it does not exist."""
    path = Path(path)
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(path))
    path.chmod(0o600)
    return key


async def _write(writer: asyncssh.SSHWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()  # waits for the client's window: back-pressure instead of buffering


def _exec_handler(name: str, host: dict, ctx: "TwinContext", log: "RequestLog", latency: float = 0.0):
    async def answer(command: str, session: shell.Session) -> int:
        await pause(latency)  # the site is that far away (the twin's latency knob)
        return await shell.run(command, session)

    async def handle(process: asyncssh.SSHServerProcess) -> None:
        command = process.command
        if command is None:
            process.stderr.write(b"this lab host only runs commands (ssh HOST COMMAND), not a login shell\n")
            process.exit(1)
            return
        log.add("ssh", name, command, write=shell.is_write(command),
                user=process.get_extra_info("username"))
        output = shell.Output(lambda d: _write(process.stdout, d), lambda d: _write(process.stderr, d))
        session = shell.Session(name=name, host=host, ctx=ctx, io=output)
        task = asyncio.get_running_loop().create_task(answer(command, session), name=f"ssh {name}: {command}")
        closed = asyncio.ensure_future(process.channel.wait_closed())
        try:
            await asyncio.wait({task, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if not task.done():  # the client went away: the command stops, as a killed process would
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return
        try:
            rc = task.result()
        except (BrokenPipeError, ConnectionError, asyncssh.Error):
            return  # the channel closed under a write
        except Exception as exc:  # a bug in the twin: say so on stderr rather than hang the client
            try:
                process.stderr.write(f"lab twin: internal error: {exc!r}\n".encode())
            except (BrokenPipeError, ConnectionError, asyncssh.Error):
                return
            rc = 70
        try:
            process.exit(rc)
        except (BrokenPipeError, ConnectionError, asyncssh.Error):
            pass

    return handle


async def start_ssh_host(name: str, host: dict, *, ctx: "TwinContext", log: "RequestLog", host_key_path: Path,
                         authorized_keys: list[str], bind: str = "127.0.0.1", port: int = 0,
                         latency: float = 0.0) -> SSHHostServer:
    """Serve one host of the model over SSH on ``bind:port`` (0: a free port); each command waits
    ``latency`` seconds before it runs (:mod:`.latency`)."""
    key = _load_host_key(host_key_path)
    allowed = {asyncssh.import_public_key(k).public_data for k in authorized_keys}
    connections: set = set()
    acceptor = await asyncssh.create_server(
        lambda: _HostAuth(allowed, connections), bind, port,
        server_host_keys=[key],
        process_factory=_exec_handler(name, host, ctx, log, latency),
        encoding=None,
        allow_pty=False,
        x11_forwarding=False,
        agent_forwarding=False,
        allow_scp=False,
        sftp_factory=None,
        login_timeout=10,
    )
    line = key.export_public_key("openssh").decode().split()
    return SSHHostServer(name, acceptor, f"{line[0]} {line[1]}", connections)
