"""What the database holds: points stored, duplicates, dead letters, alerts, node status."""

from __future__ import annotations

from typing import Any

import psycopg


class Database:
    def __init__(self, url: str) -> None:
        self.url = url

    def one(self, sql: str, params: tuple = ()) -> Any:
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def all(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def points_stored(self) -> int:
        return int(self.one("SELECT count(*) FROM ingest_telemetry"))

    def duplicates(self) -> int:
        """Rows beyond the first with the same asset, metric and time (a redelivery stored twice)."""
        return int(self.one("SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM ingest_telemetry "
                            "GROUP BY asset_id, metric_id, time HAVING count(*) > 1) d"))

    def dead_letters(self) -> list[tuple]:
        return self.all("SELECT reason, count(*) FROM ingest_deadletter GROUP BY reason")

    def open_alerts(self, rule_metric: str) -> int:
        return int(self.one("SELECT count(*) FROM twins_alert a JOIN twins_metric m ON m.id = a.metric_id "
                            "WHERE a.state = 'open' AND a.rule_id IS NOT NULL AND m.key = %s", (rule_metric,)))

    def node_status(self) -> dict[str, dict[str, Any]]:
        return {node_id: status or {} for node_id, status in self.all("SELECT node_id, status FROM edge_node_edgenode")}

    def missing_seqs(self) -> int:
        """Telemetry messages the ingest never saw, from each node's seq counter."""
        return int(self.one("SELECT coalesce(sum(greatest(0, max_seq - first_seq + 1 - messages)), 0) FROM ingest_nodestream"))
