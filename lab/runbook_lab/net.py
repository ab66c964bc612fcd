"""Loopback TCP helpers the lab twin's servers share: a port that refuses, a server that never
answers, and a byte-for-byte forwarder.

A Proxmox endpoint or the Omni health endpoint in the ``down`` mode keeps a port reserved (bound,
never listening), so connections are refused and no other server can take the port; one in the
``hang`` mode accepts connections and never answers; the extra endpoints of a Proxmox cluster
forward to the one fakepve serving it.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Callable

HOST = "127.0.0.1"


def reserve_port(host: str = HOST) -> socket.socket:
    """A port that refuses connections: bound, so nothing else can take it, but never listening.

    Keep the returned socket open for as long as the port must stay reserved.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
    except OSError:
        sock.close()
        raise
    return sock


def port_of(sock: socket.socket) -> int:
    return sock.getsockname()[1]


class Listener:
    """A loopback TCP server that remembers its connections so :meth:`stop` can close them all."""

    def __init__(self) -> None:
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self, host: str = HOST, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._accept, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self.serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        self._server = None


class HangListener(Listener):
    """Accepts connections and never answers: a hung server or a proxy that black-holes traffic."""

    def __init__(self, on_connect: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._on_connect = on_connect

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._on_connect:
            self._on_connect()
        while await reader.read(65536):  # swallow whatever the client sends, until it gives up
            pass


class Forwarder(Listener):
    """Relays every connection, byte for byte, to ``target_port`` on loopback."""

    def __init__(self, target_port: int, target_host: str = HOST) -> None:
        super().__init__()
        self.target = (target_host, target_port)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            return  # the client sees its connection closed, as with a dead backend
        self._writers.add(up_writer)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._writers.discard(up_writer)
            up_writer.close()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        dst.close()
