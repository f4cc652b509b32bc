"""BigQuery's REST encoding of results (uvs_analysis.bqstandin.wire)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import orjson
import pyarrow as pa
import pytest

from uvs_analysis.bqstandin.wire import TimestampFormat, encode_rows, schema_fields

STAMP = datetime(2025, 9, 10, 22, 0, 0, 123456, tzinfo=UTC)


def _table() -> pa.Table:
    return pa.table(
        {
            "i": pa.array([1, None], pa.int64()),
            "f": pa.array([1.5, float("nan")], pa.float64()),
            "b": pa.array([True, False]),
            "t": pa.array([STAMP, None], pa.timestamp("us", tz="UTC")),
            "j": pa.array(['{"a":1}', None], pa.json_()),
            "r": pa.array(
                [{"s": "x", "n": {"k": 2}}, None],
                pa.struct([("s", pa.string()), ("n", pa.struct([("k", pa.int64())]))]),
            ),
            "l": pa.array([["a", "b"], []], pa.list_(pa.string())),
            "d": pa.array([date(2025, 1, 2), None], pa.date32()),
            "n": pa.array([Decimal("1.500000000"), None], pa.decimal128(38, 9)),
        }
    )


def test_schema_fields_name_bigquery_types() -> None:
    """Arrow types map to BigQuery's: INTEGER, FLOAT, TIMESTAMP, JSON, RECORD, REPEATED."""
    fields = {f["name"]: f for f in schema_fields(_table().schema)}
    assert {name: f["type"] for name, f in fields.items()} == {
        "i": "INTEGER",
        "f": "FLOAT",
        "b": "BOOLEAN",
        "t": "TIMESTAMP",
        "j": "JSON",
        "r": "RECORD",
        "l": "STRING",
        "d": "DATE",
        "n": "NUMERIC",
    }
    assert fields["l"]["mode"] == "REPEATED" and fields["i"]["mode"] == "NULLABLE"
    assert fields["r"]["fields"][1] == {
        "name": "n",
        "type": "RECORD",
        "mode": "NULLABLE",
        "fields": [{"name": "k", "type": "INTEGER", "mode": "NULLABLE"}],
    }


def test_array_of_arrays_is_refused() -> None:
    """BigQuery cannot return ARRAY<ARRAY<...>>: the schema says so."""
    with pytest.raises(ValueError, match="array of arrays"):
        schema_fields(pa.schema([("x", pa.list_(pa.list_(pa.int64())))]))


def test_rows_use_bigquery_wire_values() -> None:
    """Numbers as strings, int64 microsecond timestamps, records, repeated cells and nulls."""
    table = _table()
    rows = [orjson.loads(r) for r in encode_rows(table, schema_fields(table.schema))]
    first = [cell["v"] for cell in rows[0]["f"]]
    assert first == [
        "1",
        "1.5",
        "true",
        str(int(STAMP.timestamp() * 1_000_000)),
        '{"a":1}',
        {"f": [{"v": "x"}, {"v": {"f": [{"v": "2"}]}}]},
        [{"v": "a"}, {"v": "b"}],
        "2025-01-02",
        "1.5",
    ]
    second = [cell["v"] for cell in rows[1]["f"]]
    assert second == [None, "NaN", "false", None, None, None, [], None, None]


def test_timestamp_formats() -> None:
    """Float seconds without useInt64Timestamp, ISO text with ISO8601_STRING."""
    table = pa.table({"t": pa.array([STAMP], pa.timestamp("us", tz="UTC"))})
    fields = schema_fields(table.schema)

    def value(fmt: TimestampFormat) -> object:
        return orjson.loads(next(encode_rows(table, fields, fmt)))["f"][0]["v"]

    assert value(TimestampFormat(int64=False)) == f"{STAMP.timestamp():.6f}"
    assert value(TimestampFormat(iso=True)) == "2025-09-10T22:00:00.123456Z"
