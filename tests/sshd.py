"""A throwaway OpenSSH ``sshd`` on 127.0.0.1 for tests that want a real SSH server.

It runs the system's ``/usr/sbin/sshd`` with its own config, host key, client key and
authorized_keys in a temporary directory, no PAM and no system config. Every session goes
through a ``ForceCommand`` wrapper that puts ``bin/`` of that directory first on ``PATH`` and
runs the requested command with ``/bin/sh -c``, so a test can drop shims (a fake ``docker``)
into :attr:`Sshd.bin_dir` and have them win over whatever the machine has installed.
``SetEnv SHLVL=1`` keeps bash (the login shell sshd starts the wrapper with) from sourcing
``~/.bashrc``, which bash otherwise does for every command run by sshd (~100 ms with pyenv).

    with Sshd(tmp_path) as server:
        server.add_shim("docker", "#!/bin/sh\\necho fake docker\\n")
        host = SSHHost(server.target(), CallLog())

:func:`start_or_skip` is what a fixture calls: it skips when sshd is not installed, unless
``CI=true``, where a missing sshd fails the run loudly.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

SSHD = os.environ.get("RUNBOOK_TEST_SSHD", "/usr/sbin/sshd")
START_TIMEOUT = 10.0


def _ed25519_pair() -> tuple[bytes, bytes]:
    """A new ed25519 key as (OpenSSH private key, ``ssh-ed25519 AAAA...`` public line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, public


def write_key(path: Path, private: bytes) -> Path:
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as fh:
        fh.write(private)
    return path


def new_key(path: Path) -> str:
    """Write a new private key to ``path``; return its public line."""
    private, public = _ed25519_pair()
    write_key(path, private)
    return public.decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    """One sshd process serving one user (the current one) with key authentication only."""

    host = "127.0.0.1"

    def __init__(self, workdir: str | os.PathLike):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bin_dir = self.dir / "bin"
        self.user = getpass.getuser()
        self.client_key = self.dir / "client_key"
        self.host_key = self.dir / "host_key"
        self.known_hosts = self.dir / "known_hosts"
        self.authorized_keys = self.dir / "authorized_keys"
        self.log = self.dir / "sshd.log"
        self.pids = self.dir / "sessions.pids"
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.host_public = ""

    # --- setup --------------------------------------------------------------------------------
    def _prepare(self) -> None:
        self.bin_dir.mkdir(exist_ok=True)
        host_private, host_public = _ed25519_pair()
        write_key(self.host_key, host_private)
        self.host_public = host_public.decode()
        self.authorized_keys.write_text(new_key(self.client_key) + "\n")
        wrapper = self.dir / "session-wrapper"
        wrapper.write_text(
            "#!/bin/sh\n"
            f"echo $$ >> '{self.pids}'\n"
            f"PATH='{self.bin_dir}':/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
            "export PATH\n"
            'exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n'
        )
        wrapper.chmod(0o755)
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir

    def _write_config(self) -> Path:
        config = self.dir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"ListenAddress {self.host}",
                    f"Port {self.port}",
                    f"HostKey {self.host_key}",
                    "PidFile none",
                    "UsePAM no",
                    "StrictModes no",
                    "UseDNS no",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    f"AuthorizedKeysFile {self.authorized_keys}",
                    "PermitRootLogin prohibit-password",
                    f"AllowUsers {self.user}",
                    "SetEnv SHLVL=1",  # bash then counts as nested and skips ~/.bashrc
                    "MaxSessions 64",
                    "MaxStartups 64",
                    "LogLevel VERBOSE",
                    f"ForceCommand {self.dir / 'session-wrapper'}",
                    "",
                ]
            )
        )
        return config

    def start(self) -> "Sshd":
        if not os.access(SSHD, os.X_OK):
            raise FileNotFoundError(f"{SSHD} is not installed (apt-get install openssh-server)")
        self._prepare()
        last = ""
        for _ in range(3):  # a free port can be taken between probing and binding: retry
            self.port = free_port()
            config = self._write_config()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    [SSHD, "-D", "-e", "-f", str(config)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                )
            if self._wait_ready():
                self.known_hosts.write_text(f"[{self.host}]:{self.port} {self.host_public}\n")
                return self
            last = self.log.read_text(errors="replace")[-2000:]
            self._halt()
        raise RuntimeError(f"sshd did not start; its log ends with:\n{last}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-2.0-"):
                        return True
            except OSError:
                time.sleep(0.02)
        return False

    # --- helpers for tests --------------------------------------------------------------------
    def add_shim(self, name: str, script: str) -> Path:
        """Put an executable named ``name`` first on the sessions' PATH."""
        path = self.bin_dir / name
        path.write_text(script)
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return path

    def authorize(self, public_line: str) -> None:
        """Accept one more client key (an ``ssh-ed25519 AAAA...`` line)."""
        with open(self.authorized_keys, "a") as fh:
            fh.write(public_line.strip() + "\n")

    def remove_shim(self, name: str) -> None:
        (self.bin_dir / name).unlink(missing_ok=True)

    def target(self, **fields):
        """An :class:`runbook_lib.site.SSHTarget` for this server (fields override the defaults)."""
        from runbook_lib.site import SSHTarget

        values = dict(
            host=self.host,
            port=self.port,
            user=self.user,
            key_file=str(self.client_key),
            known_hosts=str(self.known_hosts),
            ssh_config=str(self.dir / "no-ssh-config"),
            connect_timeout=5.0,
            command_timeout=10.0,
        )
        values.update(fields)
        return SSHTarget(**values)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # --- teardown -----------------------------------------------------------------------------
    def _halt(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def _kill_sessions(self) -> None:
        """Kill what sessions left running (a command without a pty survives its channel)."""
        if not self.pids.exists():
            return
        marker = f"PATH={self.bin_dir}".encode()
        for line in self.pids.read_text().split():
            pid = int(line)
            try:
                # only a process this server started: a session leader with our PATH
                environ = Path(f"/proc/{pid}/environ").read_bytes()
                if os.getsid(pid) == pid and marker in environ:
                    os.killpg(pid, signal.SIGKILL)
            except (OSError, ValueError):
                continue

    def stop(self) -> None:
        self._halt()
        self._kill_sessions()

    def __enter__(self) -> "Sshd":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def start_or_skip(workdir: str | os.PathLike) -> Sshd:
    """Start an :class:`Sshd`; skip the test when sshd is missing, fail instead when ``CI=true``."""
    import pytest

    if not os.access(SSHD, os.X_OK) or shutil.which("timeout") is None:
        why = f"{SSHD} (Debian openssh-server) and coreutils timeout are needed for this test"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{why}, and CI=true: install openssh-server", pytrace=False)
        pytest.skip(why)
    return Sshd(workdir).start()
