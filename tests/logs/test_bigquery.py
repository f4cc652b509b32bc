"""The BigQuery source through the real client and the local stand-in, against the pandas path."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from uvs_analysis.bqstandin.server import StandinHandle, start_standin
from uvs_analysis.errors import BadInputError, CredentialsError, LogPermissionError, UsageError
from uvs_analysis.logs import sessions, signatures, timeline
from uvs_analysis.logs.bigquery import BigQuerySource, bigquery_source
from uvs_analysis.logs.bigquery_queries import PushdownSettings
from uvs_analysis.logs.files import load_file
from uvs_analysis.logs.query import LogQuery, parse_time
from uvs_analysis.logs.sample import BUNDLED_SAMPLE, generate, write_sample
from uvs_analysis.logs.schema import COLUMNS, LogLoad
from uvs_analysis.logs.sources import open_source
from uvs_analysis.logs.summary import summarize_logs, summary_markdown

PROJECT, DATASET = "my-proj", "my_dataset"
LOG = f"projects/{PROJECT}/logs/run.googleapis.com%2F"
WHOLE = LogQuery(PROJECT, parse_time("2000-01-01T00:00:00Z"), parse_time("2100-01-01T00:00:00Z"))
QUERIES = {
    "whole": WHOLE,
    "narrowed": LogQuery(PROJECT, parse_time("2025-09-10T21:40:00Z"),
                         parse_time("2025-09-10T22:50:00Z"), severity="WARNING",
                         log_kinds=("request", "stderr", "system")),
}


def _entry(t: str, kind: str, instance: str | None, **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "timestamp": f"2025-09-10T{t}Z",
        "logName": LOG + kind,
        "insertId": f"x-{t}-{kind}-{instance}",
        "resource": {
            "type": "cloud_run_revision",
            "labels": {"service_name": "svc", "revision_name": "svc-0001", "location": "r"},
        },
    }
    if instance is not None:
        entry["labels"] = {"instanceId": instance}
    entry.update(fields)
    return entry


def _tricky_entries() -> list[dict[str, Any]]:
    """Split tracebacks in every shape the scanner handles, close codes in every place."""
    tb = [
        "Traceback (most recent call last):",
        '  File "app.py", line 1, in <module>',
        "ValueError: first 42",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        '  File "app.py", line 9, in handler',
        "RuntimeError: second at 10.0.0.1",
    ]
    rows = [_entry(f"22:00:00.{i:02d}0000", "stderr", "inst-a", textPayload=t)
            for i, t in enumerate(tb)]
    gap = ["Traceback (most recent call last):", '  File "a.py", line 2, in f',
           "KeyError: 'k'"]
    rows += [_entry(f"22:01:0{2 * i}.000000", "stderr", "inst-b", textPayload=t)
             for i, t in enumerate(gap)]  # 2 s apart: no grouping
    rows += [_entry(f"22:02:00.{i:02d}0000", "stderr", None, textPayload=t) for i, t in
             enumerate(["some noise", "Traceback (most recent call last):",
                        "    During handling of the above exception, another exception occurred:",
                        "  Traceback (most recent call last):", '  File "b.py"',
                        "OSError: [Errno 5] disk 7"])]
    rows += [
        _entry("22:03:00.000000", "stderr", "inst-c", textPayload=tb[0]),
        _entry("22:03:00.100000", "stderr", "inst-c", textPayload="not a frame"),
        _entry("22:04:00.000000", "stdout", "inst-c", severity="ERROR", jsonPayload={
            "message": "Failed to handle\nTraceback (most recent call last):\n  File \"x\"\n"
                       "KeyError: 'user_id=7'", "error": {"code": 1011, "reason": "db"}}),
        _entry("22:04:01.000000", "stdout", "inst-c", jsonPayload={
            "message": "closing", "severity": "error", "context": {"closeCode": "4001"}}),
        _entry("22:04:02.000000", "stdout", "inst-c", textPayload="x",
               labels={"instanceId": "inst-c", "close_code": "1008"}),
        _entry("22:04:03.000000", "stdout", "inst-d",
               textPayload="received 1006 (abnormal closure) no close frame"),
        _entry("22:04:04.000000", "stdout", "inst-d", severity="WARNING",
               textPayload="code=1000 reason=normal"),
        _entry("22:04:05.000000", "requests", "inst-d", severity="ERROR", httpRequest={
            "requestMethod": "GET", "requestUrl": "https://h/api/threads/123?x=1", "status": 502,
            "latency": "0.5s"}),
        _entry("22:04:06.000000", "requests", "inst-d", severity="INFO", httpRequest={
            "requestMethod": "GET", "requestUrl": "wss://h/ws", "status": 101,
            "latency": "300.2s"}),
        _entry("22:04:07.000000", "stderr", "inst-d", textPayload="WARNING: slow"),
        _entry("22:04:08.000000", "varlog%2Fsystem", "inst-d",
               textPayload="Memory limit of 512 MiB exceeded with 530 MiB used"),
    ]
    return rows


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bundled sample, another generated export, and a tricky one with bad lines."""
    root = tmp_path_factory.mktemp("bq-exports")
    other = write_sample(root / "seed7.ndjson", entries=2500, seed=7)
    tricky = root / "tricky.ndjson"
    entries = [*generate(400, seed=3), *_tricky_entries()]
    lines = [json.dumps(e) for e in entries]
    lines += [lines[5], lines[-3], "{not json", "[1, 2]", '{"textPayload": "no time"}']
    tricky.write_text("\n".join(lines) + "\n")
    return {"bundled": BUNDLED_SAMPLE, "seed7": other, "tricky": tricky}


#: Stand-ins serving an export as a log sink's tables instead of _AllLogs: name -> layout.
SINK_STANDINS = {"bundled:sink": "sink", "tricky:sink": "sink",
                 "tricky:sink-partitioned": "sink-partitioned"}


@pytest.fixture(scope="module")
def standins(exports: dict[str, Path]) -> Iterator[dict[str, StandinHandle]]:
    """One stand-in per export (``_AllLogs``), and the sink layouts of ``SINK_STANDINS``."""
    handles = {name: start_standin([path], project=PROJECT, dataset=DATASET)
               for name, path in exports.items()}
    for name, layout in SINK_STANDINS.items():
        handles[name] = start_standin([exports[name.split(":")[0]]], project=PROJECT,
                                      dataset=DATASET, layout=layout)
    try:
        yield handles
    finally:
        for handle in handles.values():
            handle.stop()


@pytest.fixture(scope="module")
def pushed_loads(standins: dict[str, StandinHandle]) -> Callable[[str, str], LogLoad]:
    """Loads through the stand-in, each (export, query) run once per module."""
    cache: dict[tuple[str, str], LogLoad] = {}

    def get(export: str, query_name: str) -> LogLoad:
        if (export, query_name) not in cache:
            cache[export, query_name] = _source(standins[export]).load(QUERIES[query_name])
        return cache[export, query_name]

    return get


def _source(handle: StandinHandle, options: str = "") -> BigQuerySource:
    source = open_source(f"bigquery://{PROJECT}/{DATASET}?endpoint={handle.endpoint}{options}")
    assert isinstance(source, BigQuerySource)
    return source


def _assert_frames(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)


@pytest.mark.parametrize("export", ["bundled", "seed7", "tricky", *SINK_STANDINS])
@pytest.mark.parametrize("query_name", ["whole", "narrowed"])
def test_aggregates_equal_the_pandas_path(
    exports: dict[str, Path],
    pushed_loads: Callable[[str, str], LogLoad],
    export: str,
    query_name: str,
) -> None:
    """Summary and every notebook analysis agree between BigQuery (the _AllLogs view or a log
    sink's tables) and the file loader."""
    query = QUERIES[query_name]
    pushed = pushed_loads(export, query_name)
    local = load_file(exports[export.split(":")[0]], query)
    a, b = summarize_logs(pushed), summarize_logs(local)
    for key in ("entries", "duplicates", "severity_counts", "log_kinds", "close_codes",
                "top_signatures", "ws_sessions", "window"):
        assert a[key] == b[key], key
    _assert_frames(signatures.error_signatures(pushed), signatures.error_signatures(local))
    _assert_frames(timeline.severity_over_time(pushed), timeline.severity_over_time(local))
    _assert_frames(timeline.severity_over_time(pushed, freq="30s"),
                   timeline.severity_over_time(local, freq="30s"))
    ws_a, ws_b = sessions.websocket_sessions(pushed), sessions.websocket_sessions(local)
    _assert_frames(ws_a, ws_b)
    # Latencies arrive as seconds + nanos/1e9 instead of parsed "3599.871254s" text: the same
    # value up to the last bit of a float.
    sum_a, sum_b = asdict(sessions.session_summary(ws_a)), asdict(sessions.session_summary(ws_b))
    for key in ("p50_s", "p95_s", "max_s"):
        value, expected = sum_a.pop(key), sum_b.pop(key)
        assert value == (expected if expected is None else pytest.approx(expected, rel=1e-12))
    assert sum_a == sum_b
    pd.testing.assert_series_equal(timeline.close_code_counts(pushed),
                                   timeline.close_code_counts(local))
    for analysis in (timeline.revision_timeline, timeline.deploys, timeline.instance_events,
                     timeline.error_waves):
        _assert_frames(analysis(pushed), analysis(local))
    assert a["bad_lines"] == 0  # the view holds only LogEntries; bad lines never reach it
    assert pushed.read == a["entries"] + pushed.duplicates


def test_tricky_export_exercises_the_edge_cases(
    exports: dict[str, Path], pushed_loads: Callable[[str, str], LogLoad]
) -> None:
    """The tricky export has joined tracebacks, duplicates and codes from every place."""
    pushed = pushed_loads("tricky", "whole")
    templates = set(signatures.error_signatures(pushed)["template"])
    assert "RuntimeError: second at <IP>" in templates
    local = load_file(exports["tricky"])
    assert pushed.duplicates == local.duplicates >= 2  # the generator's own, and the two added
    assert {1011, 4001, 1008, 1006, 1000} <= set(pushed.aggregates.close_codes)  # type: ignore[union-attr]
    assert local.bad_total == 3


def test_frame_holds_the_rows_near_failures_in_the_schema(
    pushed_loads: Callable[[str, str], LogLoad],
) -> None:
    """Only rows near failures are fetched; the frame has the normalized columns and dtypes."""
    load = pushed_loads("bundled", "whole")
    frame = load.frame
    assert list(frame.columns) == list(COLUMNS)
    assert {c: str(frame[c].dtype) for c in COLUMNS} == {
        c: str(pd.Series([], dtype=d).dtype) for c, (d, _) in COLUMNS.items()
    }
    agg = load.aggregates
    assert agg is not None and 0 < len(frame) < agg.entries
    assert load.meta["rows_not_fetched"] == agg.entries - len(frame)
    assert (frame["severity"].isin(["ERROR", "CRITICAL"]) | (frame["log_kind"] == "system")).any()
    local = load_file(BUNDLED_SAMPLE)
    errors = local.frame.loc[local.frame["severity"].isin(["ERROR", "CRITICAL"]), "insert_id"]
    assert set(errors) <= set(frame["insert_id"])


def test_row_cap_is_counted(standins: dict[str, StandinHandle]) -> None:
    """With max_rows=50 only 50 rows come; the rest near failures are counted, not lost."""
    load = _source(standins["bundled"], "&max_rows=50").load(WHOLE)
    assert len(load.frame) == 50
    near = load.meta["rows_near_failures"]
    assert isinstance(near, int) and load.meta["rows_near_failures_not_fetched"] == near - 50
    assert load.meta["sessions_not_fetched"] == load.aggregates.sessions_total - 50  # type: ignore[union-attr]
    assert "over the row limit" in summary_markdown(summarize_logs(load))


def test_cost_guard_refuses_and_records(
    standins: dict[str, StandinHandle], pushed_loads: Callable[[str, str], LogLoad]
) -> None:
    """Dry-run bytes are recorded; a query over max_bytes is refused before any runs."""
    handle = standins["bundled"]
    load = pushed_loads("bundled", "whole")
    estimated = load.meta["bytes_estimated"]
    by_query = load.meta["bytes_by_query"]
    assert isinstance(by_query, dict) and estimated == sum(by_query.values()) > 0
    assert summarize_logs(load)["pull"]["bytes_estimated"] == estimated
    limit = min(by_query.values())
    handle.reset()
    with pytest.raises(UsageError, match=r"would scan .* over the limit .*max_bytes=N") as info:
        _source(handle, f"&max_bytes={limit}").load(WHOLE)
    assert f"{limit:,} bytes" in str(info.value)
    assert handle.stats().queries == 0 < handle.stats().dry_runs  # dry-run only, none ran


def test_other_timeout_is_judged_from_the_listed_sessions(
    pushed_loads: Callable[[str, str], LogLoad], exports: dict[str, Path]
) -> None:
    """A summary for another request timeout than the pushed one still matches pandas."""
    pushed = pushed_loads("bundled", "whole")
    local = load_file(exports["bundled"])
    for timeout in (300.0, 60.0):
        a = summarize_logs(pushed, request_timeout_s=timeout)["ws_sessions"]
        assert a == summarize_logs(local, request_timeout_s=timeout)["ws_sessions"]


def test_other_signature_settings_are_refused(
    pushed_loads: Callable[[str, str], LogLoad],
) -> None:
    """Signatures for other settings than those pushed down are refused with a hint."""
    pushed = pushed_loads("bundled", "whole")
    with pytest.raises(UsageError, match="differs from what BigQuery computed"):
        signatures.error_signatures(pushed, min_severity="WARNING")
    with pytest.raises(UsageError, match="multiple of the 10 s bins"):
        timeline.severity_over_time(pushed, freq="500ms")


def test_file_load_passes_through_the_analyses(exports: dict[str, Path]) -> None:
    """A LogLoad without aggregates is analysed from its frame, as the frame itself is."""
    local = load_file(exports["seed7"])
    assert isinstance(local, LogLoad)
    _assert_frames(signatures.error_signatures(local), signatures.error_signatures(local.frame))


@pytest.mark.parametrize(
    "url",
    [
        "bigquery://my-proj",
        "bigquery://my-proj/",
        "bigquery://my-proj/a/b",
        "bigquery:///ds",
        "bigquery://my-proj/ds?colour=red",
        "bigquery://my-proj/ds?max_bytes=lots",
        "bigquery://my-proj/ds?max_rows=0",
        "bigquery://My_Proj/ds",
        "bigquery://my-proj/d-s",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    """A malformed bigquery:// URL is a BadInputError naming the expected form."""
    with pytest.raises(BadInputError):
        open_source(url)


def test_url_options_are_parsed() -> None:
    """Options set the table, endpoint, cost limit and pushdown settings."""
    source = bigquery_source(
        "bigquery://my-proj/my_ds?table=sink_logs&endpoint=http://127.0.0.1:9&max_bytes=5"
        "&max_rows=7&request_timeout_s=60&context_s=1.5&bin_s=10"
    )
    assert source.table == "`my-proj.my_ds.sink_logs`" and source.max_bytes == 5
    assert source.endpoint == "http://127.0.0.1:9"
    assert source.settings == PushdownSettings(
        max_rows=7, request_timeout_s=60.0, context_s=1.5, bin_s=10
    )
    assert source.describe() == "bigquery://my-proj/my_ds?table=sink_logs&endpoint=http://127.0.0.1:9"


def test_load_needs_a_window() -> None:
    """Without a query there is no window to bound the scan: a clear error."""
    with pytest.raises(BadInputError, match="explicit time window"):
        bigquery_source("bigquery://my-proj/my_ds?endpoint=http://127.0.0.1:9").load(None)


def test_missing_credentials_name_the_login_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Application Default Credentials the message says how to log in."""
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    with pytest.raises(CredentialsError, match="gcloud auth application-default login"):
        bigquery_source("bigquery://my-proj/my_ds").client()


class _Forbidden(BaseHTTPRequestHandler):
    """Lists the dataset (or refuses to, with ``list_denied``) and refuses every job."""

    list_denied = False

    def do_GET(self) -> None:
        if self.list_denied:
            self._send(403, {"error": {"code": 403, "message": "Access Denied: Dataset "
                                       "my-proj:my_ds: Permission bigquery.tables.list denied",
                                       "errors": [{"reason": "accessDenied"}]}})
        else:
            ref = {"projectId": "my-proj", "datasetId": "my_ds", "tableId": "_AllLogs"}
            self._send(200, {"tables": [{"tableReference": ref, "type": "VIEW"}]})

    def do_POST(self) -> None:
        self._send(403, {"error": {"code": 403, "message": "Access Denied: jobs.create",
                                   "errors": [{"reason": "accessDenied"}]}})

    def _send(self, status: int, reply: dict[str, Any]) -> None:
        body = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _ListDenied(_Forbidden):
    list_denied = True


@pytest.mark.parametrize("handler", [_Forbidden, _ListDenied], ids=["jobs", "tables.list"])
def test_forbidden_names_the_roles(handler: type[_Forbidden]) -> None:
    """A 403 from BigQuery (creating a job, or listing the dataset's tables) names
    roles/bigquery.dataViewer and roles/bigquery.jobUser."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"bigquery://my-proj/my_ds?endpoint=http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(LogPermissionError) as info:
            bigquery_source(url).load(WHOLE)
        assert "roles/bigquery.dataViewer" in str(info.value)
        assert "roles/bigquery.jobUser" in str(info.value)
    finally:
        server.shutdown()
        server.server_close()


def test_unknown_dataset_is_a_clear_error(standins: dict[str, StandinHandle]) -> None:
    """A dataset the server does not have is a BadInputError naming the linked dataset."""
    url = f"bigquery://{PROJECT}/nope?endpoint={standins['bundled'].endpoint}"
    with pytest.raises(BadInputError, match="not found"):
        open_source(url).load(WHOLE)


def test_an_unreachable_endpoint_fails_soon_with_a_clear_error() -> None:
    """A refused connection ends the load once the retry time is spent, naming the endpoint."""
    from uvs_analysis.errors import LogSourceError

    source = BigQuerySource(PROJECT, DATASET, endpoint="http://127.0.0.1:9", retry_s=1.5)
    with pytest.raises(LogSourceError, match=r"BigQuery at http://127.0.0.1:9 could not be "
                       r"reached within 1.5 s \(ConnectionError"):
        source.load(WHOLE)


def test_sink_shards_outside_the_window_are_not_read(tmp_path: Path) -> None:
    """A log sink's date-sharded tables: only the window's days are read and billed, the
    result equals the file loader's for that window, and a window without tables says so."""
    first = _tricky_entries()
    second = [{**e, "timestamp": e["timestamp"].replace("2025-09-10", "2025-09-11"),
               "insertId": e["insertId"] + "-next"} for e in first]
    path = tmp_path / "two-days.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in [*first, *second]))
    day2 = LogQuery(PROJECT, parse_time("2025-09-11T00:00:00Z"),
                    parse_time("2025-09-12T00:00:00Z"))
    with start_standin([path], project=PROJECT, dataset=DATASET, layout="sink") as handle:
        source = _source(handle)
        both = source.load(WHOLE)
        assert {t.rsplit("_", 1)[1] for t in both.meta["tables_read"]} == {  # type: ignore[union-attr]
            "20250910", "20250911"}
        load = source.load(day2)
        read = load.meta["tables_read"]
        assert isinstance(read, list) and read and all(t.endswith("_20250911") for t in read)
        assert 0 < load.meta["bytes_estimated"] < both.meta["bytes_estimated"]  # type: ignore[operator]
        a, b = summarize_logs(load), summarize_logs(load_file(path, day2))
        for key in ("entries", "severity_counts", "log_kinds", "close_codes", "top_signatures",
                    "ws_sessions"):
            assert a[key] == b[key], key
        assert a["entries"] == len(second)
        later = LogQuery(PROJECT, parse_time("2025-09-12T00:00:00Z"),
                         parse_time("2025-09-13T00:00:00Z"))
        with pytest.raises(BadInputError, match="no Cloud Run log sink tables for this query"):
            source.load(later)


def test_a_named_table_is_read_as_it_is(standins: dict[str, StandinHandle]) -> None:
    """?table= skips the listing: the sink stand-in has no such _AllLogs-shaped table."""
    with pytest.raises(BadInputError, match="run_googleapis_com_"):
        _source(standins["bundled:sink"], "&table=_AllLogs").load(WHOLE)


def test_sink_rows_keep_the_payload_as_logged(
    pushed_loads: Callable[[str, str], LogLoad], exports: dict[str, Path]
) -> None:
    """Rows fetched from sink tables carry no null members the sink's RECORD schema added, and
    the payloads of the hand-made entries (lower-case keys but the aliases) read as logged."""
    pushed = pushed_loads("tricky:sink", "whole")
    local = load_file(exports["tricky"]).frame.drop_duplicates("insert_id")
    logged = dict(zip(local["insert_id"], local["payload"], strict=True))
    fetched = pushed.frame.dropna(subset=["payload"])
    compared = 0
    for insert_id, text in zip(fetched["insert_id"], fetched["payload"], strict=True):
        payload = json.loads(text)
        assert "null" not in text, payload
        if insert_id.startswith("x-"):
            assert payload == json.loads(logged[insert_id])
            compared += 1
    assert compared >= 2


def test_a_pushed_down_load_is_cached(standins: dict[str, StandinHandle], tmp_path: Path) -> None:
    """A re-run reads the snapshot (aggregates included) and runs no query; refresh runs again."""
    from datetime import UTC, datetime

    from uvs_analysis.logs.sources import load_logs

    handle = standins["bundled"]
    url = f"bigquery://{PROJECT}/{DATASET}?endpoint={handle.endpoint}"
    clock = lambda: datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # noqa: E731
    query = QUERIES["narrowed"]
    handle.reset()
    first = load_logs(url, query, cache_dir=tmp_path, now=clock)
    ran = handle.stats().queries
    assert ran > 0 and first.meta["cache"]["hit"] is False  # type: ignore[index]
    again = load_logs(url, query, cache_dir=tmp_path, now=clock)
    assert handle.stats().queries == ran  # nothing ran
    assert again.meta["cache"]["hit"] is True  # type: ignore[index]
    assert again.meta["bytes_estimated"] == first.meta["bytes_estimated"]
    assert summarize_logs(again)["top_signatures"] == summarize_logs(first)["top_signatures"]
    for key in ("entries", "severity_counts", "close_codes", "ws_sessions", "duplicates"):
        assert summarize_logs(again)[key] == summarize_logs(first)[key], key
    _assert_frames(signatures.error_signatures(again), signatures.error_signatures(first))
    _assert_frames(sessions.websocket_sessions(again), sessions.websocket_sessions(first))
    for analysis in (timeline.revision_timeline, timeline.deploys, timeline.instance_events,
                     timeline.error_waves, timeline.severity_over_time):
        _assert_frames(analysis(again), analysis(first))
    load_logs(url, query, cache_dir=tmp_path, now=clock, refresh=True)
    assert handle.stats().queries > ran


def test_a_query_too_long_for_bigquery_is_refused(
    standins: dict[str, StandinHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A view over many sink tables can exceed BigQuery's query length: refused, none run."""
    import uvs_analysis.logs.bigquery as bq

    handle = standins["bundled:sink"]
    source = _source(handle)
    longest = max(len(q.sql) for q in source.queries(WHOLE).values())
    monkeypatch.setattr(bq, "MAX_QUERY_CHARS", longest - 1)
    handle.reset()
    with pytest.raises(UsageError, match=r"characters long, over BigQuery's limit .* narrow the"):
        source.load(WHOLE)
    assert handle.stats().queries == handle.stats().dry_runs == 0
