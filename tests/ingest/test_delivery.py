"""Delivery guarantees with real processes: SIGKILL mid-stream, two workers sharing one
stream, a database outage. Every reading must be stored exactly once."""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time

import pytest

from edge_node.agent import contract
from ingest import timeseries
from ingest.models import NodeStream
from tests.factories import make_fleet
from tests.helpers import Publisher, TcpProxy, start_ingest_process, wait_until

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

READINGS_PER_MESSAGE = 25


def publish_stream(mqtt_url: str, fleet, seqs, t0: float, pause_s: float = 0.0) -> None:
    topic = contract.topic(fleet.node.node_id, "telemetry")
    with Publisher(mqtt_url) as pub:
        for seq in seqs:
            readings = [
                {"asset": fleet.assets[i % len(fleet.assets)].key, "ts": t0 + seq + i * 0.01, "values": {"temperature_c": 20.0 + i, "vib_rms": float(seq % 90)}}
                for i in range(READINGS_PER_MESSAGE)
            ]
            pub.publish(topic, contract.encode({"seq": seq, "readings": readings}, "msgpack" if seq % 2 else "json"), wait=True)
            if pause_s:
                time.sleep(pause_s)


def total_rows(fleet) -> int:
    return sum(timeseries.count_rows(a.id) for a in fleet.assets)


def distinct_rows(fleet) -> int:
    from django.db import connection

    ids = [a.id for a in fleet.assets]
    with connection.cursor() as cur:
        placeholders = ", ".join(["%s"] * len(ids))
        cur.execute(
            f"SELECT COUNT(*) FROM (SELECT DISTINCT time, asset_id, metric_id FROM ingest_telemetry WHERE asset_id IN ({placeholders})) d", ids
        )
        return cur.fetchone()[0]


class Worker:
    """An ingest worker process whose log is drained on a thread (so its pipe never fills)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(proc.stdout), daemon=True).start()

    def log(self) -> str:
        return "".join(self.lines)

    def wait_connected(self, timeout: float = 20) -> None:
        wait_until(lambda: "connected to" in self.log() or self.proc.poll() is not None, timeout, what="the worker to connect")
        assert self.proc.poll() is None, self.log()

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        time.sleep(0.2)  # let the reader thread take the last lines
        return self.log()


def start_worker(*args, **kwargs) -> Worker:
    return Worker(start_ingest_process(*args, **kwargs))


def test_it_stores_every_reading_exactly_once_across_a_sigkill(transactional_db, mqtt_url, unique):
    fleet = make_fleet(3)
    client_id = f"test-kill-{unique}"
    n = 300
    expected = n * READINGS_PER_MESSAGE * 2
    worker = start_worker(mqtt_url, client_id)
    try:
        worker.wait_connected()
        t0 = time.time() - 600
        publisher = threading.Thread(target=publish_stream, args=(mqtt_url, fleet, range(1, n + 1), t0, 0.005))
        publisher.start()
        wait_until(lambda: total_rows(fleet) >= expected // 4, 30, what="a quarter of the stream stored")
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(10)
        stored_at_kill = total_rows(fleet)
        assert stored_at_kill < expected, "the stream finished before the kill; the test proves nothing"
        publisher.join(60)
        worker = start_worker(mqtt_url, client_id)  # same client id: the broker resumes its session
        worker.wait_connected()
        wait_until(lambda: total_rows(fleet) >= expected, 60, what=f"all {expected} values after the restart")
        time.sleep(0.5)  # a late duplicate would land now
        assert total_rows(fleet) == expected
        assert distinct_rows(fleet) == expected
        stream = NodeStream.objects.get(node_key=fleet.node.node_id)
        assert (stream.messages, stream.missing) == (n, 0)
    finally:
        worker.stop()


def test_it_splits_one_stream_over_two_workers_with_a_shared_subscription(transactional_db, mqtt_url, unique):
    fleet = make_fleet(3)
    group = f"g{unique}"
    workers = [start_worker(mqtt_url, f"test-share-{unique}-{i}", share=group) for i in (1, 2)]
    logs = ["", ""]
    try:
        for w in workers:
            w.wait_connected()
        n = 300
        publish_stream(mqtt_url, fleet, range(1, n + 1), time.time() - 600)
        expected = n * READINGS_PER_MESSAGE * 2
        wait_until(lambda: total_rows(fleet) >= expected, 60, what=f"all {expected} values")
        time.sleep(0.5)
        assert total_rows(fleet) == expected and distinct_rows(fleet) == expected
    finally:
        logs = [w.stop() for w in workers]
    handled = [int(m.group(1)) for log in logs for m in [re.search(r"'messages': (\d+)", log)] if m]
    assert len(handled) == 2 and all(h > 0 for h in handled), f"both workers must take part: {handled}"


def test_it_waits_out_a_database_outage_and_loses_nothing(transactional_db, postgres, mqtt_url, unique):
    from django.db import connection

    fleet = make_fleet(2)
    proxy = TcpProxy(int(connection.settings_dict["PORT"] or 5432))
    s = connection.settings_dict
    url = f"postgres://{s['USER']}@127.0.0.1:{proxy.port}/{s['NAME']}"
    worker = start_worker(mqtt_url, f"test-outage-{unique}", extra_env={"DATABASE_URL": url})
    try:
        worker.wait_connected()
        t0 = time.time() - 600
        publish_stream(mqtt_url, fleet, range(1, 21), t0)
        wait_until(lambda: total_rows(fleet) == 20 * READINGS_PER_MESSAGE * 2, 20, what="the first 20 messages")
        proxy.cut()
        publish_stream(mqtt_url, fleet, range(21, 61), t0)  # published while the database is unreachable
        time.sleep(2.0)
        assert total_rows(fleet) == 20 * READINGS_PER_MESSAGE * 2
        proxy.restore()
        expected = 60 * READINGS_PER_MESSAGE * 2
        wait_until(lambda: total_rows(fleet) >= expected, 40, what="the messages held during the outage")
        time.sleep(0.5)
        assert total_rows(fleet) == expected and distinct_rows(fleet) == expected
    finally:
        log = worker.stop()
        proxy.close()
        with connection.cursor() as cur:  # let the worker's sessions end before the test database is dropped
            def through_proxy():
                cur.execute("SELECT client_port FROM pg_stat_activity WHERE datname = current_database()")
                return {port for (port,) in cur.fetchall()} & proxy.upstream_ports

            wait_until(lambda: not through_proxy(), 10, what="the worker's database sessions to end")
    assert "database unavailable" in log, log[-2000:]


def test_a_worker_started_during_a_long_database_outage_waits_in_a_loop_and_then_stores(transactional_db, postgres, mqtt_url, unique):
    """The database is down when the worker starts and stays down for more attempts than
    Python's recursion limit allows (waits shortened to milliseconds here): the worker keeps
    waiting in its loop, does not die, and stores what was published meanwhile once it is back."""
    from django.db import connection

    fleet = make_fleet(2)
    proxy = TcpProxy(int(connection.settings_dict["PORT"] or 5432))
    proxy.cut()
    s = connection.settings_dict
    url = f"postgres://{s['USER']}@127.0.0.1:{proxy.port}/{s['NAME']}"
    worker = start_worker(mqtt_url, f"test-start-outage-{unique}", extra_env={
        "DATABASE_URL": url, "INGEST_DB_WAIT_MIN_S": "0.001", "INGEST_DB_WAIT_MAX_S": "0.002",
    })
    try:
        worker.wait_connected()  # subscribed: the broker keeps what comes next for its session
        t0 = time.time() - 600
        publish_stream(mqtt_url, fleet, range(1, 11), t0)  # the broker holds them for the worker's session
        wait_until(lambda: worker.log().count("database unavailable at start") > 1500 or worker.proc.poll() is not None, 60,
                   what="more failed attempts than the recursion limit")
        assert worker.proc.poll() is None, worker.log()[-3000:]
        proxy.restore()
        expected = 10 * READINGS_PER_MESSAGE * 2
        wait_until(lambda: total_rows(fleet) >= expected, 30, what="the messages published during the outage")
        assert total_rows(fleet) == expected and distinct_rows(fleet) == expected
    finally:
        log = worker.stop()
        proxy.close()
        with connection.cursor() as cur:
            def through_proxy():
                cur.execute("SELECT client_port FROM pg_stat_activity WHERE datname = current_database()")
                return {port for (port,) in cur.fetchall()} & proxy.upstream_ports

            wait_until(lambda: not through_proxy(), 10, what="the worker's database sessions to end")
    assert "RecursionError" not in log and "Traceback" not in log, log[-3000:]
