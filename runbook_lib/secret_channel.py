"""How the kernel tells the runner which secrets it resolved, without writing them anywhere.

The runner scrubs the record in its own process, so it must learn every secret value the kernel
resolved. It listens on a Unix socket in its private directory (:class:`SecretSink`) and puts
the socket's path into the kernel's environment (:data:`SOCKET_ENV`). :func:`send` (called by
:func:`runbook_lib.redact.register`) writes each value as one line and waits for the runner's
one-byte acknowledgement, so a value registered before a cell ended is known to the runner
before it scrubs anything. A socket holds no data on disk: a run killed at any moment,
``SIGKILL`` included, leaves no secret behind.

Values are escaped (``\\`` and newline) so that one value is one line.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from pathlib import Path

SOCKET_ENV = "RUNBOOK_SECRET_SOCKET"
SEND_TIMEOUT = 5.0
_MAX_LINE = 1 << 20

_client_lock = threading.Lock()
_client: socket.socket | None = None
_client_path = ""


def encode(value: str) -> bytes:
    return (value.replace("\\", "\\\\").replace("\n", "\\n") + "\n").encode("utf-8")


def decode(line: bytes) -> str:
    text = line.decode("utf-8", errors="replace")
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append("\n" if text[i + 1] == "n" else text[i + 1])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def send(path: str, value: str) -> bool:
    """Tell the runner listening on ``path`` about one secret value; True once it acknowledged.

    One connection per process, opened on first use (and again after a failure). A runner that
    does not answer within :data:`SEND_TIMEOUT` costs a warning on stderr, never the run: the
    runner also scrubs every secret the site file names.
    """
    global _client, _client_path
    data = encode(value)
    with _client_lock:
        for _attempt in (1, 2):
            try:
                if _client is None or _client_path != path:
                    _close_client()
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.settimeout(SEND_TIMEOUT)
                    sock.connect(path)
                    _client, _client_path = sock, path
                _client.sendall(data)
                if _client.recv(1) == b"\n":
                    return True
                raise OSError("the runner closed the secret channel")
            except OSError as exc:
                _close_client()
                error = exc
        print(f"runbook: warning: could not pass a secret value to the runner: {error}", file=sys.stderr)
        return False


def _close_client() -> None:
    global _client
    if _client is not None:
        try:
            _client.close()
        except OSError:
            pass
    _client = None


class SecretSink:
    """The runner's end: a Unix socket (mode 0600, in a 0700 directory) collecting values in memory."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / "secrets.sock"
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self._sock.bind(str(self.path))
        finally:
            os.umask(old)
        self._sock.listen(16)
        self._sock.settimeout(0.5)  # so that close() ends the accepting thread
        self._closed = False
        threading.Thread(target=self._accept, name="secret-sink", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=self._serve, args=(conn,), name="secret-sink-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line:
                        with self._lock:
                            self._values.add(decode(line))
                    try:
                        conn.sendall(b"\n")
                    except OSError:
                        return
                if len(buf) > _MAX_LINE:
                    return

    def values(self) -> set[str]:
        with self._lock:
            return set(self._values)

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.close()
        except OSError:
            pass
        try:
            self.path.unlink()
        except OSError:
            pass
