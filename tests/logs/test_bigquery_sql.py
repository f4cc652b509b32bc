"""The BigQuery SQL builder: parameters, refusals, and the SQL rules against their Python twins."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st

from uvs_analysis.bqstandin import BigQueryEngine, build_alllogs, connect
from uvs_analysis.errors import UsageError
from uvs_analysis.logs.bigquery_queries import (
    PushdownSettings,
    aggregate_queries,
    near_failure_query,
)
from uvs_analysis.logs.bigquery_sql import (
    base_ctes,
    mask_sql,
    single_group,
    sql_string,
    strip_sql,
    table_ref,
    where_clause,
)
from uvs_analysis.logs.extract import CLOSE_TEXT_PATTERNS, close_from_text, infer_severity
from uvs_analysis.logs.query import LogQuery
from uvs_analysis.logs.signatures import mask

TABLE = "`demo-project.cloud_run_logs._AllLogs`"
SNEAKY = "x' OR 1=1 --"


def _query(**kwargs: object) -> LogQuery:
    base: dict[str, object] = {
        "project": "p",
        "start": "2025-09-10T21:00:00Z",
        "end": "2025-09-10T23:00:00Z",
    }
    return LogQuery(**(base | kwargs))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> BigQueryEngine:
    """An engine over a one-entry table: expressions are evaluated over UNNEST(@texts)."""
    path = tmp_path_factory.mktemp("bq") / "one.ndjson"
    path.write_text('{"timestamp": "2025-09-10T21:30:00Z", "insertId": "a", "textPayload": "x"}\n')
    con = connect()
    build_alllogs(con, [path])
    return BigQueryEngine(con, project="demo-project", dataset="cloud_run_logs")


def _eval(engine: BigQueryEngine, expr: str, texts: list[str]) -> list[object]:
    sql = f"SELECT pos, {expr} AS out FROM UNNEST(@texts) AS t WITH OFFSET AS pos ORDER BY pos"
    table = engine.run(sql, {"texts": texts})
    return table["out"].to_pylist()  # type: ignore[no-any-return]


def test_where_clause_uses_named_parameters() -> None:
    """Service, revision and region values travel as parameters, never in the SQL text."""
    query = _query(service=SNEAKY, revision="rev-1", region="us-central1", log_kinds=("stderr",))
    where, params = where_clause(query)
    assert SNEAKY not in where and "rev-1" not in where
    assert params["service"].value == SNEAKY and params["service"].type == "STRING"
    assert params["start"].value == datetime(2025, 9, 10, 21, tzinfo=UTC)
    assert params["log_id_0"].value == "run.googleapis.com/stderr"
    for name in ("@start", "@end", "@service", "@revision", "@region", "@log_id_0"):
        assert name in where


def test_unset_filters_add_no_clause() -> None:
    """Without service/revision/region the WHERE clause has only window, resource and kinds."""
    where, params = where_clause(_query())
    assert set(params) == {"start", "end", "log_id_0", "log_id_1", "log_id_2", "log_id_3"}
    assert "service_name" not in where


def test_severity_floor_is_a_parameter() -> None:
    """The severity floor becomes @min_rank, applied to the normalized severity."""
    sql, params = base_ctes(TABLE, _query(severity="warning"))
    assert params["min_rank"].value == 400 and "@min_rank" in sql
    sql, params = base_ctes(TABLE, _query())
    assert "min_rank" not in params


def test_extra_filter_is_refused() -> None:
    """A Logging-query-language clause cannot run in BigQuery: a clear UsageError."""
    with pytest.raises(UsageError, match=r"Logging-query-language.*cloudlogging://"):
        where_clause(_query(extra_filter='jsonPayload.x="1"'))


@pytest.mark.parametrize(
    ("project", "dataset", "table"),
    [("My_Proj", "d", "_AllLogs"), ("p-1", "d;drop", "_AllLogs"), ("p-1", "d", "t`x")],
)
def test_table_ref_refuses_bad_names(project: str, dataset: str, table: str) -> None:
    """Identifiers cannot be parameters, so they are checked strictly instead."""
    with pytest.raises(UsageError):
        table_ref(project, dataset, table)


def test_table_ref_quotes_a_good_name() -> None:
    """A valid project, dataset and table become one back-quoted reference."""
    assert table_ref("my-proj", "my_dataset") == "`my-proj.my_dataset._AllLogs`"


def test_single_group_keeps_only_one_capture() -> None:
    """Other named groups become non-capturing (BigQuery's REGEXP_EXTRACT allows one)."""
    assert single_group(r"(?P<code>\d+) (?P<reason>\w+)", "code") == r"(\d+) (?:\w+)"


def test_every_query_transpiles_and_names_its_parameters() -> None:
    """Each query parses as BigQuery SQL and uses every parameter it declares."""
    queries = aggregate_queries(TABLE, _query(service="s", severity="INFO"), PushdownSettings())
    queries["near_failures"] = near_failure_query(TABLE, _query(), PushdownSettings())
    for query in queries.values():
        sqlglot.transpile(query.sql, read="bigquery", write="duckdb")
        used = {p for p in query.params if f"@{p}" in query.sql}
        assert {"start", "end", "log_id_0"} <= used


def test_settings_out_of_range_are_refused() -> None:
    """A zero row cap or a timeout beyond Cloud Run's limit is a UsageError."""
    with pytest.raises(UsageError, match="max_rows"):
        PushdownSettings(max_rows=0)
    with pytest.raises(UsageError, match="request_timeout_s"):
        PushdownSettings(request_timeout_s=7200)


def test_string_literals_round_trip(engine: BigQueryEngine) -> None:
    """Quotes, backslashes and control characters survive the literal and the transpiler."""
    texts = ["it's", "back\\slash", "new\nline\ttab", 'dq "x"', "\x01ctl", "émoji 😀"]
    for text in texts:
        table = engine.run(f"SELECT {sql_string(text)} AS out", {})
        assert table["out"].to_pylist() == [text]


_PIECES = st.sampled_from(
    [
        "user_id=42", "uid: bob", "conn_id=abc-123", "123e4567-e89b-12d3-a456-426614174000",
        "0xDEADbeef", "deadbeefcafe", "10.0.0.1", "10.1.2.3:8080", "[::1]:443", "fe80::1",
        "2025-09-10T21:30:00.123Z", "21:30:00", "35ms", "1.5s", "42", "3.14", "main_5b14bc0d",
        "token='abc'", "Bearer abcdefghijkl", "a@b.example.com", "https://h.io/p?q=1",
        "projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736", "😀", "[U+1F600]", "?",
        "Error", "timeout", " ", "  ", "\t", ":", "=", "'", '"', ",", "(", ")", "-", "_",
    ]
)
_MESSAGES = st.lists(
    st.one_of(_PIECES, st.text(alphabet="abcXYZ019 :=-_./", max_size=8)), max_size=12
).map("".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(_MESSAGES, min_size=1, max_size=20))
def test_mask_chain_matches_python(engine: BigQueryEngine, messages: list[str]) -> None:
    """The SQL REGEXP_REPLACE chain masks exactly as signatures.mask()."""
    assert _eval(engine, mask_sql("t"), messages) == [mask(m) for m in messages]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(
            _MESSAGES,
            st.sampled_from(
                [
                    "received 1011 (internal error) keepalive ping timeout",
                    "WebSocket closed with code 1008: Authentication failed",
                    'close(1011, "Service initialization failed")',
                    "code=4001 reason=bad",
                    "close 1000 (OK)",
                    "ERROR: boom",
                    "[WARNING] low",
                    "Traceback (most recent call last):",
                    "  ValueError",
                ]
            ),
        ),
        min_size=1,
        max_size=10,
    )
)
def test_close_codes_and_severity_inference_match_python(
    engine: BigQueryEngine, messages: list[str]
) -> None:
    """Close codes found in text and the inferred stderr severity agree with extract.py."""
    from uvs_analysis.logs.bigquery_sql import _infer_severity, _text_close_code

    codes = _eval(engine, _text_close_code("t"), messages)
    assert codes == [close_from_text(m)[0] for m in messages]
    inferred = _eval(engine, _infer_severity("t"), messages)
    assert inferred == [infer_severity(m) for m in messages]


def test_strip_matches_python(engine: BigQueryEngine) -> None:
    """strip_sql removes the whitespace str.strip() removes, Unicode spaces included."""
    texts = ["  a b  ", "\u3000x\u00a0", "\t\n", "", "\x1cy\x1f"]
    assert _eval(engine, strip_sql("t"), texts) == [t.strip() for t in texts]


def test_close_text_patterns_have_only_named_groups() -> None:
    """single_group relies on CLOSE_TEXT_PATTERNS having no unnamed capturing groups."""
    import re

    for pattern in CLOSE_TEXT_PATTERNS:
        compiled = re.compile(single_group(pattern, "code"))
        assert compiled.groups == 1
