"""Processes for the field tests: test devices, the agent, a serial line made of two ptys."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

from tests.helpers import ROOT


class DeviceProcess:
    """A test device (tests/field/*_device.py) in its own process; stop() and start() again
    on the same port, continuing the same timeline (``--t0``)."""

    def __init__(self, module: str, *args: str, log_dir: Path) -> None:
        self.module = module
        self.args = list(args)
        self.log_path = log_dir / f"{module.rsplit('.', 1)[-1]}-{os.getpid()}-{id(self)}.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> DeviceProcess:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes it
        self.process = subprocess.Popen([sys.executable, "-m", self.module, *self.args], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                line = self.process.stdout.readline()
                if line.strip() == b"ready":
                    return self
                if not line:
                    break
            if self.process.poll() is not None:
                break
        raise AssertionError(f"{self.module} did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


class AgentProcess:
    """``python -m edge_node.agent run --config ...`` with its output kept for the assertions."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.log_path = config.with_suffix(".log")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child writes it
        self.process = subprocess.Popen([sys.executable, "-m", "edge_node.agent", "run", "--config", str(config),
                                         "--log-level", "INFO"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.log()


class SerialLine:
    """Two pseudo-terminals joined back to back: what one end writes the other reads, as on
    an RS-485 line between a gateway and a meter (``paths``: the device nodes to open)."""

    def __init__(self) -> None:
        self._fds = []
        ends = []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(slave)
            self._fds += [master, slave]
            ends.append((master, os.ttyname(slave)))
        (self._a, path_a), (self._b, path_b) = ends
        self.paths = (path_a, path_b)
        self._stop = False
        self._thread = threading.Thread(target=self._relay, daemon=True)
        self._thread.start()

    def _relay(self) -> None:
        peer = {self._a: self._b, self._b: self._a}
        while not self._stop:
            ready, _, _ = select.select(list(peer), [], [], 0.1)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue  # the other side is not open yet
                if data:
                    os.write(peer[fd], data)

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        for fd in self._fds:
            os.close(fd)
