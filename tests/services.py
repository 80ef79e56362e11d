"""Private copies of real services that a test or benchmark may crash on purpose.

``PrivateMosquitto`` runs Mosquitto with the broker settings of the shipped
``deploy/mosquitto/aiot.conf`` (persistence, autosave, queue limits: everything above its
first listener) on a free port with its own persistence folder, and can be killed with
SIGKILL and started again on the same port. ``PrivatePostgres`` runs a throw-away PostgreSQL
cluster (initdb in a temporary folder, as the ``postgres`` user when run as root) that can be
crashed (``pg_ctl stop -m immediate``) and restarted. The machine's shared services are never
touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "aiot.conf"
# Settings of the shipped file that only make sense on the production host.
_HOST_ONLY = ("pid_file", "persistence_location", "per_listener_settings", "log_dest")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def shipped_broker_settings(path: Path = SHIPPED_MOSQUITTO_CONF) -> list[str]:
    """The broker-wide lines of the shipped config (before its first listener)."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("listener"):
            break
        if line and not line.startswith("#") and line.split()[0] not in _HOST_ONLY:
            lines.append(line)
    return lines


class PrivateMosquitto:
    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "data").mkdir(exist_ok=True)
        self.port = port or free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.conf = self.workdir / "mosquitto.conf"
        self.conf.write_text("\n".join([
            *shipped_broker_settings(),
            "user root" if os.geteuid() == 0 else "",
            f"persistence_location {self.workdir / 'data'}/",
            f"log_dest file {self.workdir / 'mosquitto.log'}",
            "log_type error", "log_type warning", "log_type notice",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
        ]) + "\n")
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 10.0) -> None:
        out = open(self.workdir / "stdout.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.monotonic() + timeout
        while not listening(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start: {self.log()[-2000:]}")
            time.sleep(0.02)
        self.starts += 1

    def kill9(self) -> None:
        """A crash: SIGKILL, nothing saved beyond the last autosave."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def log(self) -> str:
        text = ""
        for name in ("stdout.log", "mosquitto.log"):
            p = self.workdir / name
            if p.exists():
                text += p.read_text(errors="replace")
        return text


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in versions:
        if (folder / name).exists():
            return str(folder / name)
    raise RuntimeError(f"PostgreSQL's {name} not found (install postgresql)")


class PrivatePostgres:
    """A PostgreSQL cluster of its own (trust auth on 127.0.0.1, a free port)."""

    def __init__(self, port: int | None = None) -> None:
        # Its own folder under the system temp dir: as root, the cluster runs as ``postgres``,
        # which must be able to reach it (a private mkdtemp parent would be mode 700).
        self.workdir = Path(tempfile.mkdtemp(prefix="aiot-pg-"))
        self.data = self.workdir / "pgdata"
        self.port = port or free_port()
        self.as_postgres = os.geteuid() == 0
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = list(args)
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)

    def init(self) -> None:
        if self.as_postgres:
            shutil.chown(self.workdir, "postgres", "postgres")
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.workdir} -c fsync=off"
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.workdir / "pg.log"), "-w", "start")

    def crash(self) -> None:
        """Stop at once, without a checkpoint (recovery runs at the next start)."""
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop", check=False)

    def stop(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "stop", check=False)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


TIMESCALE_HARNESS = ROOT / "tests" / "timescale" / "harness"


class TimescaleHarness:
    """A real TimescaleDB build for tests and benchmarks: PGlite (PostgreSQL 17.5 in
    WebAssembly) with TimescaleDB 2.23.0-dev, served over the wire protocol by
    ``tests/timescale/harness/server.mjs``. In memory; one connection at a time; no COPY FROM
    STDIN. Never a production engine."""

    def __init__(self) -> None:
        self.node = shutil.which("node")
        self.port = free_port()
        self.url = f"postgres://postgres:postgres@127.0.0.1:{self.port}/postgres?sslmode=disable"
        self.process: subprocess.Popen | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="timescale-harness-", suffix=".log")[1])

    @staticmethod
    def missing() -> str | None:
        """Why the harness cannot run here, or None."""
        if shutil.which("node") is None:
            return "needs node (Node.js 20) for the TimescaleDB harness"
        if not (TIMESCALE_HARNESS / "node_modules" / "@unni-craftsman" / "pglite").is_dir():
            return f"needs the TimescaleDB harness installed: cd {TIMESCALE_HARNESS} && npm ci"
        return None

    def start(self, timeout: float = 60.0) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([self.node, "server.mjs", str(self.port)], cwd=TIMESCALE_HARNESS,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the TimescaleDB harness did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.2)

    def _answers(self) -> bool:
        """A real query, then the connection closed and its one slot given back (a bare TCP
        probe can take the slot while the next client connects)."""
        import psycopg

        if not listening(self.port):
            return False
        try:
            with psycopg.connect(self.url, connect_timeout=5) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        time.sleep(0.3)
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log_path.unlink(missing_ok=True)
