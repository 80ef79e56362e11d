from __future__ import annotations

from edge_node.agent.outbox import Outbox


def test_seq_keeps_increasing_across_a_reopen(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", max_bytes=10**6, max_rows=1000)
    seqs = [box.put("telemetry", lambda s: f"batch {s}".encode()) for _ in range(3)]
    box.delete(r.id for r in box.peek(0, 10))
    box.close()
    box = Outbox(tmp_path / "o.sqlite", max_bytes=10**6, max_rows=1000)
    assert seqs == [1, 2, 3]
    assert box.put("telemetry", lambda s: b"x") == 4
    assert box.put("events", lambda s: b"e") == 1  # each channel has its own counter
    assert [r.seq for r in box.peek(0, 10)] == [4, 1]


def test_a_full_buffer_drops_the_oldest_and_counts_them(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", max_bytes=10**6, max_rows=5)
    for _ in range(12):
        box.put("telemetry", lambda s: f"{s}".encode())
    assert box.depth == 5
    assert box.dropped == 7
    assert [r.seq for r in box.peek(0, 100)] == [8, 9, 10, 11, 12]
    box.close()
    again = Outbox(tmp_path / "o.sqlite", max_bytes=10**6, max_rows=5)
    assert again.dropped == 7 and again.depth == 5


def test_the_byte_bound_is_kept_too(tmp_path):
    box = Outbox(tmp_path / "o.sqlite", max_bytes=1000, max_rows=10**6)
    for _ in range(50):
        box.put("telemetry", lambda s: b"x" * 100)
    assert box.size_bytes <= 1000
    assert box.depth + box.dropped == 50
