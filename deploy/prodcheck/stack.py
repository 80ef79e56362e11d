"""Start, kill -9 and restart the platform's processes, each its own OS process with its log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .table import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.25) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CheckFailed(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class CheckFailed(RuntimeError):
    """A step of the production check did not do what it should."""


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    ready: Callable[[], bool] | None = None
    popen: subprocess.Popen | None = None
    starts: int = 0
    pid_file: Path | None = None  # a daemon that writes its pid (Mosquitto) is killed by that pid

    def start(self, timeout: float = 60.0) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 (handed to the child)
        log.write(f"\n=== start {self.starts + 1}: {' '.join(self.argv)}\n".encode())
        log.flush()
        self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.starts += 1
        if self.ready is not None:
            deadline = time.monotonic() + timeout
            while not self.ready():
                if self.popen.poll() is not None:
                    raise CheckFailed(f"{self.name} exited with {self.popen.returncode} at start; see {self.log_path}:\n{self.tail()}")
                if time.monotonic() > deadline:
                    raise CheckFailed(f"{self.name} not ready after {timeout:g} s; see {self.log_path}:\n{self.tail()}")
                time.sleep(0.2)

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> int:
        """SIGKILL, no warning, like a power cut of that process; returns the pid killed."""
        pid = self.pid
        os.kill(pid, signal.SIGKILL)
        assert self.popen is not None
        self.popen.wait(10)
        # Celery's pool children would outlive their parent: a real kill -9 of the host's
        # process takes them too, so kill the whole session (the group start_new_session made).
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return pid

    def stop(self, timeout: float = 20.0) -> int | None:
        if not self.alive():
            return None if self.popen is None else self.popen.returncode
        assert self.popen is not None
        self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            return self.popen.wait(10)

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Stack:
    """The running processes by name; each name's restarts are counted."""

    procs: dict[str, Proc] = field(default_factory=dict)

    def add(self, proc: Proc, timeout: float = 60.0) -> Proc:
        self.procs[proc.name] = proc
        proc.start(timeout)
        return proc

    def restart_after_kill9(self, name: str, timeout: float = 60.0) -> int:
        proc = self.procs[name]
        pid = proc.kill9()
        proc.start(timeout)
        return pid

    def check_alive(self) -> None:
        dead = [p for p in self.procs.values() if not p.alive()]
        if dead:
            raise CheckFailed("; ".join(f"{p.name} exited ({p.popen.returncode if p.popen else '?'}):\n{p.tail()}" for p in dead))

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()


def run_once(argv: list[str], env: dict[str, str], log_path: Path, what: str, timeout: float = 300.0, stdin: str | None = None) -> str:
    """A one-shot command of the table (migrate, collectstatic, ...): its output, or CheckFailed."""
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, input=stdin)
    with open(log_path, "a") as log:
        log.write(f"\n=== {' '.join(argv)} -> {result.returncode}\n{result.stdout}{result.stderr}")
    if result.returncode != 0:
        raise CheckFailed(f"{what} failed ({result.returncode}): {' '.join(argv)}\n{(result.stderr or result.stdout)[-2000:]}")
    return result.stdout
