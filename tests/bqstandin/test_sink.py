"""A log sink's tables built by the stand-in (uvs_analysis.bqstandin.sink), via the real client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from uvs_analysis.bqstandin import StandinHandle, start_standin
from uvs_analysis.bqstandin.alllogs import build_alllogs, connect
from uvs_analysis.bqstandin.sink import build_sink_tables
from uvs_analysis.errors import UsageError

PROJECT, DATASET = "demo-project", "sink_logs"
LOG = f"projects/{PROJECT}/logs/run.googleapis.com%2F"


def _entry(t: str, kind: str, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "timestamp": t,
        "logName": LOG + kind,
        "insertId": f"id-{t}-{kind}",
        "resource": {"type": "cloud_run_revision",
                     "labels": {"service_name": "svc", "revision_name": "svc-1"}},
        "labels": {"instanceId": "00ab"},
    }
    entry.update(fields)
    return entry


ENTRIES = [
    _entry("2026-11-02T23:59:59.5Z", "stdout", jsonPayload={
        "message": "hello", "connectionId": "c-1", "Context": {"closeCode": 1011, "empty": {}},
        "logging.googleapis.com/x": "v", "tags": ["a", "b"], "mixed": 1}),
    _entry("2026-11-03T00:00:01Z", "stdout", jsonPayload={"message": "again", "mixed": "one",
                                                           "ratio": 1}),
    _entry("2026-11-03T00:00:02Z", "stdout", jsonPayload={"message": "x", "ratio": 0.5}),
    _entry("2026-11-03T00:00:03Z", "requests", severity="INFO", httpRequest={
        "requestMethod": "GET", "requestUrl": "wss://h/ws", "status": 101,
        "latency": "300.250000001s", "requestSize": "12"}),
    _entry("2026-11-03T00:00:04Z", "stderr", textPayload="Traceback (most recent call last):"),
]


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sink") / "logs.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in ENTRIES))
    return path


@pytest.fixture(scope="module")
def sharded(export: Path) -> Iterator[StandinHandle]:
    with start_standin([export], project=PROJECT, dataset=DATASET, layout="sink") as handle:
        yield handle


def test_tables_are_per_log_and_utc_day(sharded: StandinHandle) -> None:
    """One table per log id and UTC day of the entries, as a sink's date-sharded tables."""
    names = [t.table_id for t in sharded.client().list_tables(f"{PROJECT}.{DATASET}")]
    assert names == [
        "run_googleapis_com_requests_20261103",
        "run_googleapis_com_stderr_20261103",
        "run_googleapis_com_stdout_20261102",
        "run_googleapis_com_stdout_20261103",
    ]


def test_tables_list_pages(sharded: StandinHandle) -> None:
    """tables.list answers pages with a token, which the client follows."""
    pages = sharded.client().list_tables(f"{PROJECT}.{DATASET}", max_results=3, page_size=3)
    assert len(list(pages)) == 3
    every = sharded.client().list_tables(f"{PROJECT}.{DATASET}", page_size=1)
    assert len(list(every)) == 4


def test_schema_follows_the_sink_rules(sharded: StandinHandle) -> None:
    """camelCase LogEntry columns, lower-cased user fields, FLOAT latency, REPEATED arrays."""
    client = sharded.client()
    stdout = client.get_table(f"{PROJECT}.{DATASET}.run_googleapis_com_stdout_20261102")
    top = {f.name: f for f in stdout.schema}
    assert {"logName", "timestamp", "insertId", "jsonPayload", "labels", "resource"} <= set(top)
    assert "httpRequest" not in top and "textPayload" not in top  # no entry had them
    payload = {f.name: f for f in top["jsonPayload"].fields}
    assert {"message", "connectionid", "context", "logging_googleapis_com_x", "tags"} <= set(
        payload)
    assert [f.name for f in payload["context"].fields] == ["closecode"]  # the empty {} is gone
    assert payload["tags"].mode == "REPEATED" and payload["tags"].field_type == "STRING"
    assert [f.name for f in top["labels"].fields] == ["instanceid"]
    requests = client.get_table(f"{PROJECT}.{DATASET}.run_googleapis_com_requests_20261103")
    (http_field,) = [f for f in requests.schema if f.name == "httpRequest"]
    http = {f.name: f.field_type for f in http_field.fields}
    assert http["latency"] == "FLOAT" and http["status"] == "INTEGER"
    assert http["requestSize"] == "INTEGER" and "cacheHit" in http


def test_values_and_type_conflicts(sharded: StandinHandle) -> None:
    """Latency in seconds; a field whose types disagree is STRING; ints and floats are FLOAT."""
    rows = list(sharded.client().query(
        f"SELECT httpRequest.latency AS latency, httpRequest.requestSize AS size "
        f"FROM `{PROJECT}.{DATASET}.run_googleapis_com_requests_20261103`").result())
    assert rows[0]["latency"] == pytest.approx(300.250000001) and rows[0]["size"] == 12
    table = sharded.client().get_table(f"{PROJECT}.{DATASET}.run_googleapis_com_stdout_20261103")
    (payload_field,) = [f for f in table.schema if f.name == "jsonPayload"]
    payload = {f.name: f.field_type for f in payload_field.fields}
    assert payload["mixed"] == "STRING" and payload["ratio"] == "FLOAT"


def test_partitioned_layout_has_one_table_per_log(export: Path) -> None:
    with start_standin([export], project=PROJECT, dataset=DATASET,
                       layout="sink-partitioned") as handle:
        names = [t.table_id for t in handle.client().list_tables(f"{PROJECT}.{DATASET}")]
        assert names == ["run_googleapis_com_requests", "run_googleapis_com_stderr",
                         "run_googleapis_com_stdout"]
        (row,) = handle.client().query(
            f"SELECT COUNT(*) AS n FROM `{PROJECT}.{DATASET}.run_googleapis_com_stdout`"
        ).result()
        assert row["n"] == 3


def test_every_row_lands_in_one_table(export: Path) -> None:
    """The sink tables hold exactly the rows of _AllLogs."""
    con = connect()
    try:
        built = build_alllogs(con, [export])
        sink = build_sink_tables(con)
        assert sum(sink.rows.values()) == built.rows == len(ENTRIES)
    finally:
        con.close()


def test_unknown_layout_and_sink_without_logs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="layout 'views' is not known"):
        start_standin([tmp_path / "x.ndjson"], layout="views")
    from uvs_analysis.bqstandin.server import open_service

    with pytest.raises(UsageError, match="built from log files"):
        open_service(None, database=tmp_path / "x.duckdb", layout="sink")
