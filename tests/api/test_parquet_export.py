"""Telemetry as Parquet, as a data team's notebook reads it: the file read back with pyarrow has
exactly the stored times, keys and values, in row groups; bad requests are a 4xx naming why."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest.timeseries.writes import write_rows

pytestmark = pytest.mark.django_db


def _read(response) -> pq.ParquetFile:
    return pq.ParquetFile(io.BytesIO(b"".join(response.streaming_content)))


def test_it_exports_a_sites_readings_as_parquet_in_row_groups(client, manager, fleet, token_of, monkeypatch):
    from api import telemetry_parquet

    monkeypatch.setattr(telemetry_parquet, "ROW_GROUP_ROWS", 100)
    a, b = fleet.assets[0], fleet.assets[1]
    temp, vib = fleet.metrics["temperature_c"], fleet.metrics["vib_rms"]
    start = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    stored = []
    for i in range(130):  # 4 readings per instant: 520 rows, 6 row groups of at most 100
        t = start + timedelta(seconds=i * 7, microseconds=123457 + i)
        stored += [(t, a.id, temp.id, 20.0 + i / 8), (t, a.id, vib.id, i * 0.1), (t, b.id, temp.id, -3.25 * i), (t, b.id, vib.id, 1e-9 * i)]
    write_rows(stored)
    write_rows([(start - timedelta(seconds=1), a.id, temp.id, 999.0), (start + timedelta(hours=1), a.id, temp.id, 999.0)])  # outside the range
    q = urlencode({"site": fleet.site.id, "start": start.isoformat(), "end": (start + timedelta(hours=1)).isoformat()})
    response = client.get(f"/api/v1/exports/telemetry.parquet?{q}", HTTP_AUTHORIZATION=token_of(manager))
    assert response.status_code == 200 and response["Content-Type"] == "application/vnd.apache.parquet"
    assert response["Content-Disposition"] == 'attachment; filename="telemetry-20261130T0800-20261130T0900.parquet"'
    chunks = list(response.streaming_content)
    assert len(chunks) >= 6  # handed on a row group at a time, not built whole
    f = pq.ParquetFile(io.BytesIO(b"".join(chunks)))
    assert f.metadata.num_rows == 520 and f.metadata.num_row_groups == 6
    table = f.read()
    assert table.schema.types == [pa.timestamp("us", tz="UTC"), pa.string(), pa.string(), pa.float64()]
    assert table.schema.names == ["time", "asset", "metric", "value"]
    asset_keys, metric_keys = {a.id: a.key, b.id: b.key}, {temp.id: "temperature_c", vib.id: "vib_rms"}
    expected = sorted(stored, key=lambda r: (r[0], r[1], r[2]))
    assert table.column("time").to_pylist() == [r[0] for r in expected]  # to the microsecond
    assert table.column("asset").to_pylist() == [asset_keys[r[1]] for r in expected]
    assert table.column("metric").to_pylist() == [metric_keys[r[2]] for r in expected]
    assert table.column("value").to_pylist() == [r[3] for r in expected]  # float64: exact


def test_an_empty_range_is_a_valid_file_with_no_rows(client, manager, fleet, token_of):
    q = urlencode({"asset": fleet.assets[0].id, "start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"})
    response = client.get(f"/api/v1/exports/telemetry.parquet?{q}", HTTP_AUTHORIZATION=token_of(manager))
    assert response.status_code == 200
    f = _read(response)
    assert f.metadata.num_rows == 0 and f.schema_arrow.names == ["time", "asset", "metric", "value"]


@pytest.mark.parametrize(("query", "field", "words"), [
    ("site={s}&start=1980-01-01T00:00:00Z&end=2026-01-01T00:00:00Z", "start", "at most"),  # decades
    ("site={s}&start=1500-01-01T00:00:00Z&end=2026-01-01T00:00:00Z", "start", "Out of range"),  # centuries
    ("asset=987654321", "asset", "Not found"),
    ("site={s}&start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z", "start", "before end"),
    ("", "asset", "Give an asset or a site"),
    ("asset={a}&start=yesterday", "start", "Not a time"),
    ("asset={a}&metrics=vib_rms", "metrics", "Unknown field"),
])
def test_it_answers_a_bad_export_request_with_a_400_naming_the_field(client, manager, fleet, token_of, query, field, words):
    r = client.get("/api/v1/exports/telemetry.parquet?" + query.format(s=fleet.site.id, a=fleet.assets[0].id), HTTP_AUTHORIZATION=token_of(manager))
    assert r.status_code == 400 and r["Content-Type"] == "application/json", r.content
    body = r.json()
    assert field in body["fields"] and words in " ".join(body["fields"][field])


def test_an_asset_of_another_site_and_a_user_without_a_role_are_refused(client, manager, outsider, fleet, token_of):
    from tests.factories import make_asset, make_site

    hidden = make_asset(make_site(), fleet.asset_type, None)
    r = client.get(f"/api/v1/exports/telemetry.parquet?asset={hidden.id}", HTTP_AUTHORIZATION=token_of(manager))
    assert r.status_code == 400 and r.json()["fields"] == {"asset": ["Not found among what you may see."]}
    r = client.get(f"/api/v1/exports/telemetry.parquet?asset={fleet.assets[0].id}", HTTP_AUTHORIZATION=token_of(outsider))
    assert r.status_code == 403 and "role" in r.json()["error"]
    assert client.get(f"/api/v1/exports/telemetry.parquet?asset={fleet.assets[0].id}").status_code == 401


def test_the_asset_page_links_both_exports_of_the_range_it_shows(client, manager, fleet):
    import html
    import re

    asset, metric = fleet.assets[0], fleet.metrics["vib_rms"]
    now = datetime.now(UTC).replace(microsecond=0)
    write_rows([(now - timedelta(minutes=30), asset.id, metric.id, 1.5), (now - timedelta(hours=3), asset.id, metric.id, 9.0)])
    client.force_login(manager)  # the browser's session: no token needed
    page = client.get(f"/assets/{asset.id}/?range=1h").content.decode()
    links = {name: html.unescape(href) for name, href in re.findall(r'id="export-(csv|parquet)" href="([^"]+)"', page)}
    assert set(links) == {"csv", "parquet"} and links["parquet"].startswith("/api/v1/exports/telemetry.parquet?")
    table = _read(client.get(links["parquet"])).read()
    assert table.column("value").to_pylist() == [1.5] and table.column("asset").to_pylist() == [asset.key]  # the last hour only
    csv_text = b"".join(client.get(links["csv"]).streaming_content).decode()
    assert csv_text.splitlines()[1].endswith(f"{asset.key},vib_rms,1.5")


def test_an_export_stopped_half_way_leaves_the_connection_ready(manager, fleet, monkeypatch):
    """A client that goes away mid-download: the COPY is cancelled and drained, the next query works."""
    from django.db import connection

    from api import telemetry
    from twins.models import Asset

    monkeypatch.setattr(telemetry, "CSV_GROUP_ROWS", 50)
    asset, metric = fleet.assets[0], fleet.metrics["vib_rms"]
    start = datetime(2026, 11, 30, tzinfo=UTC)
    write_rows([(start + timedelta(seconds=i), asset.id, metric.id, float(i)) for i in range(2000)])
    chunks = telemetry.csv_chunks([asset.id], start, start + timedelta(hours=1))
    assert next(chunks) == telemetry.CSV_HEADER
    assert next(chunks).count(b"\n") == 50
    chunks.close()
    assert Asset.objects.filter(id=asset.id).exists()
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM ingest_telemetry WHERE asset_id = %s", [asset.id])
        assert cur.fetchone()[0] == 2000
    rows = b"".join(telemetry.csv_chunks([asset.id], start, start + timedelta(hours=1))).decode().splitlines()
    assert len(rows) == 2001 and rows[-1] == f"2026-11-30T00:33:19.000000Z,{asset.key},vib_rms,1999"


def test_the_fleet_page_links_each_sites_last_day_of_readings(client, manager, fleet):
    import html
    import re

    now = datetime.now(UTC).replace(microsecond=0)
    metric = fleet.metrics["temperature_c"]
    write_rows([(now - timedelta(hours=h), a.id, metric.id, float(h)) for h in (1, 30) for a in fleet.assets])
    client.force_login(manager)
    page = client.get("/").content.decode()
    href = html.unescape(re.search(r'class="export-parquet" href="([^"]+)"', page).group(1))
    assert href == f"/api/v1/exports/telemetry.parquet?site={fleet.site.id}"
    table = _read(client.get(href)).read()
    assert sorted(table.column("asset").to_pylist()) == sorted(a.key for a in fleet.assets) and set(table.column("value").to_pylist()) == {1.0}
