"""Small helpers for tests that talk to real services."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("AIOT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright's sync API (Playwright's own download is not used).

    The sync API keeps an event loop in the test thread; the ORM calls tests make between page
    actions are plain synchronous ones, so Django's async-safety check is relaxed meanwhile.
    """
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last value: {value!r})")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Publisher:
    """A paho client (MQTT 5) that publishes with QoS 1 and waits for each PUBACK."""

    def __init__(self, url: str, client_id: str | None = None) -> None:
        parts = urlsplit(url)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"test-pub-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
        if parts.username:
            self.client.username_pw_set(parts.username, parts.password)
        self.client.max_inflight_messages_set(200)
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, wait: bool = True) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if wait:
            info.wait_for_publish(10)
        return info

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def database_url_for_subprocess() -> str:
    """A DATABASE_URL that points a child process at the database the tests use."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def start_ingest_process(mqtt_url: str, client_id: str, share: str | None = None, extra_env: dict | None = None) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=database_url_for_subprocess(), MQTT_URL=mqtt_url, INGEST_SESSION_EXPIRY_S="120")
    env.pop("REDIS_URL", None)  # live updates are not under test here
    env.update(extra_env or {})
    cmd = [sys.executable, "manage.py", "ingest", "--client-id", client_id, "--protocol", "5", "--no-live"]
    if share:
        cmd += ["--share", share]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def purge_celery_queue(redis_url: str, queue: str = "celery") -> int:
    """Empty a Celery queue on Redis before a worker starts: tasks earlier tests (or an earlier
    run, whose new database reuses the same ids) left there would run against this run's rows,
    and rollout steps retrying against a broker long gone would hold the worker's threads."""
    from kombu import Connection

    with Connection(redis_url) as conn:
        return conn.default_channel.queue_purge(queue) or 0


@contextmanager
def celery_worker_process(
    queue: str | None, redis_url: str, database_url: str, processes: int = 2, extra_env: dict | None = None, *,
    pool: str = "prefork", name: str | None = None, drop_env: tuple[str, ...] = (),
) -> Iterator[subprocess.Popen]:
    """A real Celery worker on the Redis broker consuming ``queue`` (None: the default queues),
    named ``<name or queue>@<host>``; ``drop_env`` names variables of this process it must not
    inherit. A warm shutdown at the end (it finishes or requeues its tasks)."""
    import signal

    purge_celery_queue(redis_url, queue or "celery")
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, LOG_LEVEL="WARNING")
    for var in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", *drop_env):
        env.pop(var, None)
    env.update(extra_env or {})
    cmd = [str(ROOT / ".venv/bin/celery"), "-A", "web", "worker", "-P", pool, "--without-gossip", "--without-mingle",
           "--without-heartbeat", "-n", f"{name or queue}@%h", "--loglevel", "WARNING"]
    if pool != "solo":
        cmd += ["-c", str(processes)]
    if queue:
        cmd += ["-Q", queue]
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


class TcpProxy:
    """A TCP proxy (to PostgreSQL, to the broker) that can cut every connection: an outage."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self.up = True
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.upstream_ports: set[int] = set()  # our side of each PostgreSQL connection
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.upstream_ports.add(upstream.getsockname()[1])
            self.pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):  # shutdown first: close() alone does not wake the other pipe's recv
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def cut(self) -> None:
        self.up = False
        for a, b in self.pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.pairs.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.server.close()
        self.cut()


@contextmanager
def ingest_worker_running(mqtt_url: str, name: str, live: bool = False) -> Iterator[Any]:
    """The real ingest worker on a thread of this process, connected and with its registry
    loaded; stopped at the end. The thread closes its own database connection, else the test
    database could not be dropped."""
    from django.db import connection

    from ingest.worker import IngestWorker

    worker = IngestWorker(broker_url=mqtt_url, client_id=f"test-{name}-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5, live=live)

    def run() -> None:
        try:
            worker.run()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_until(worker.connected.is_set, 10, what="the ingest worker to connect")
        wait_until(lambda: worker.registry is not None, 10, what="the registry to load")
        yield worker
    finally:
        worker.stop()
        thread.join(10)
