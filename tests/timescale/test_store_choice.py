"""Which store a new table gets: the decision from what the server says (pure, every case),
and the shape of an existing table winning over the extension (on real PostgreSQL)."""

from __future__ import annotations

import pytest

from ingest.timeseries.store import StoreError, TimescaleFacts, choose_store, parse_version

USABLE = TimescaleFacts(available=True, installed_version=None, default_version="2.17.2", preloaded=True, loaded=True,
                        license="timescale", superuser=True)


def with_(**changes) -> TimescaleFacts:
    return TimescaleFacts(**{**USABLE.__dict__, **changes})


def test_it_uses_a_usable_community_timescaledb_in_auto():
    choice = choose_store("auto", USABLE)
    assert (choice.store, choice.edition, choice.reasons) == ("timescale", "community", ())


def test_the_apache_licence_gets_the_apache_edition():
    assert choose_store("auto", with_(license="apache")).edition == "apache"


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        (with_(available=False, default_version=None), "not installed on the server"),
        (with_(preloaded=False, loaded=False), "shared_preload_libraries"),
        (with_(default_version="2.13.1"), "older than the supported 2.15.2"),
        (with_(default_version="2.15.1"), "older than the supported 2.15.2"),
        (with_(superuser=False), "may not create it"),
        (with_(default_version="2.20.0", all_tables_publication=True), "FOR ALL TABLES publication"),
    ],
)
def test_auto_falls_back_to_partitions_and_says_why(facts, reason):
    choice = choose_store("auto", facts)
    assert choice.store == "postgres"
    assert any(reason in r for r in choice.reasons), choice.reasons


@pytest.mark.parametrize("facts", [with_(preloaded=False, loaded=False), with_(default_version="2.9.0")])
def test_a_required_timescaledb_that_cannot_be_used_stops_with_the_reason(facts):
    with pytest.raises(StoreError, match="TELEMETRY_STORE=timescale, but TimescaleDB cannot be used"):
        choose_store("timescale", facts)


def test_postgres_is_kept_even_where_timescaledb_is_usable():
    assert choose_store("postgres", USABLE).store == "postgres"


def test_an_extension_created_already_needs_no_privilege_to_be_used():
    choice = choose_store("auto", with_(installed_version="2.23.0-dev", superuser=False, preloaded=False, loaded=True))
    assert choice.store == "timescale"


def test_a_publication_matters_only_from_2_20_on():
    assert choose_store("auto", with_(default_version="2.19.3", all_tables_publication=True)).store == "timescale"


def test_versions_are_read_like_the_extension_writes_them():
    assert parse_version("2.23.0-dev") == (2, 23, 0)
    assert parse_version("2.15") == (2, 15, 0)
    assert parse_version(None) is None and parse_version("dev") is None


def test_an_unknown_setting_is_refused_by_name():
    with pytest.raises(StoreError, match="TELEMETRY_STORE must be one of"):
        choose_store("influx", USABLE)


def test_on_plain_postgresql_a_new_store_is_partitioned_and_the_shape_is_read_from_the_table(postgres):
    from django.db import connection

    from ingest.timeseries import store

    assert store.shape_of_table(connection) == "postgres"
    with connection.cursor() as cur:
        cur.execute("SELECT relkind FROM pg_class WHERE relname = 'ingest_telemetry'")
        assert cur.fetchone()[0] == "p"
