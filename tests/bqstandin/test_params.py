"""Query parameters bound as typed literals (uvs_analysis.bqstandin.params)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from uvs_analysis.bqstandin.engine import BigQueryEngine, QueryError
from uvs_analysis.bqstandin.params import to_query_parameters

TABLE = "`demo-project.cloud_run_logs._AllLogs`"


def _param(name: str, kind: str, value: Any) -> dict[str, Any]:
    return {"name": name, "parameterType": {"type": kind}, "parameterValue": {"value": value}}


def test_python_values_are_typed_like_the_client_types_them() -> None:
    """bool, int, float, str, Decimal, aware datetime, date and lists get BigQuery types."""
    got = to_query_parameters(
        {
            "b": True,
            "i": 3,
            "f": 1.5,
            "s": "x",
            "d": Decimal("1.25"),
            "t": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
            "day": date(2025, 1, 2),
            "a": ["x", "y"],
        }
    )
    kinds = {p["name"]: p["parameterType"]["type"] for p in got}
    assert kinds == {
        "b": "BOOL",
        "i": "INT64",
        "f": "FLOAT64",
        "s": "STRING",
        "d": "NUMERIC",
        "t": "TIMESTAMP",
        "day": "DATE",
        "a": "ARRAY",
    }
    assert got[-1]["parameterType"]["arrayType"] == {"type": "STRING"}


def test_rest_parameters_of_each_type_round_trip(engine: BigQueryEngine) -> None:
    """REST queryParameters of each scalar type come back as the values they carry."""
    params = [
        _param("s", "STRING", "it's"),
        _param("i", "INT64", "-42"),
        _param("f", "FLOAT64", "2.5"),
        _param("b", "BOOL", "true"),
        _param("n", "NUMERIC", "1.250"),
        _param("t", "TIMESTAMP", "2025-09-10 22:00:00.123456+00:00"),
        _param("d", "DATE", "2025-09-10"),
        _param("dt", "DATETIME", "2025-09-10T22:00:00"),
        _param("j", "JSON", '{"a": [1]}'),
        _param("missing", "STRING", None),
        {
            "name": "arr",
            "parameterType": {"type": "ARRAY", "arrayType": {"type": "INT64"}},
            "parameterValue": {"arrayValues": [{"value": "1"}, {"value": "2"}]},
        },
    ]
    got = engine.run(
        "SELECT @s AS s, @i AS i, @f AS f, @b AS b, @n AS n, @t AS t, @d AS d, @dt AS dt, "
        "JSON_VALUE(@j, '$.a[0]') AS j, @missing AS m, @arr AS arr",
        params,
    ).to_pylist()[0]
    assert got["s"] == "it's" and got["i"] == -42 and got["f"] == 2.5 and got["b"] is True
    assert got["n"] == Decimal("1.25")
    assert got["t"] == datetime(2025, 9, 10, 22, 0, 0, 123456, tzinfo=UTC)
    assert got["d"] == date(2025, 9, 10) and got["dt"] == datetime(
        2025, 9, 10, 22, tzinfo=UTC
    ).replace(tzinfo=None)
    assert got["j"] == "1" and got["m"] is None and got["arr"] == [1, 2]


def test_positional_parameters_in_order(engine: BigQueryEngine) -> None:
    """``?`` placeholders take the unnamed parameters in order."""
    params = [
        {"parameterType": {"type": "INT64"}, "parameterValue": {"value": "7"}},
        {"parameterType": {"type": "STRING"}, "parameterValue": {"value": "b"}},
    ]
    assert engine.run("SELECT ? AS a, ? AS b", params).to_pylist() == [{"a": 7, "b": "b"}]


def test_string_parameters_are_values_not_sql(engine: BigQueryEngine) -> None:
    """A parameter holding SQL is compared as text: it matches nothing and changes nothing."""
    sneaky = "ERROR' OR '1'='1"
    got = engine.run(f"SELECT COUNT(*) AS n FROM {TABLE} WHERE severity = @sev", {"sev": sneaky})
    assert got.column("n")[0].as_py() == 0
    names = engine.run("SELECT @Sev AS s", {"sev": sneaky}).column("s").to_pylist()
    assert names == [sneaky]  # names match case-insensitively, as in BigQuery


@pytest.mark.parametrize(
    ("param", "words"),
    [
        (_param("x", "INT64", "abc"), "not a valid INT64"),
        (_param("x", "INT64", str(2**64)), "INT64"),
        (_param("x", "TIMESTAMP", "yesterday"), "not a valid TIMESTAMP"),
        (_param("x", "BOOL", "maybe"), "not a valid BOOL"),
        (_param("x", "GEOGRAPHY", "POINT(1 1)"), "not supported"),
        (
            {"name": "x", "parameterType": {"type": "STRUCT"}, "parameterValue": {}},
            "STRUCT parameters are not supported",
        ),
    ],
)
def test_bad_parameters_are_refused(
    engine: BigQueryEngine, param: dict[str, Any], words: str
) -> None:
    """A value that does not fit its type, or an unsupported type, is a clear 400."""
    with pytest.raises(QueryError, match=words) as caught:
        engine.run("SELECT @x AS x", [param])
    assert caught.value.status == 400


def test_unsupported_python_value_is_refused() -> None:
    """A Python value no parameter type carries is refused with its type named."""
    with pytest.raises(QueryError, match="Python type dict"):
        to_query_parameters({"x": {"a": 1}})
