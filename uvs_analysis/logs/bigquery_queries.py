"""The queries a pushed-down load runs: aggregates, and the rows near failures.

Pure: each function returns a :class:`~uvs_analysis.logs.bigquery_sql.SqlQuery` whose SQL
starts from ``base_ctes`` (the query's entries, normalized and deduplicated). Error events
mirror ``signatures.error_events``: rows at or above the floor, except that split Python
tracebacks (consecutive stderr lines of one instance at most ``gap_s`` apart) become one event;
the grouping is the state machine of ``signatures._scan_instance`` written with window
functions (see ``TRACEBACK``). Signature texts and the masking chain are computed in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from uvs_analysis.errors import UsageError
from uvs_analysis.logs.bigquery_events import EVENTS, TRACEBACK, in_list
from uvs_analysis.logs.bigquery_sql import Param, SqlQuery, base_ctes, sql_string, where_clause
from uvs_analysis.logs.query import LogQuery
from uvs_analysis.logs.schema import SEVERITY_RANK
from uvs_analysis.logs.timeline import INSTANCE_EVENT_PATTERNS

__all__ = ["PushdownSettings", "aggregate_queries", "near_failure_query"]



@dataclass(frozen=True)
class PushdownSettings:
    """What the server-side analysis assumes (the notebook's defaults).

    Attributes:
        request_timeout_s: the service's request timeout (sessions at it are flagged).
        tolerance_s: how close to the timeout a session must end.
        gap_s: the longest pause between two lines of one split traceback.
        min_severity: the error floor of error events and signatures.
        max_examples: insertIds kept per signature.
        bin_s: width of the severity-over-time bins computed server-side (whole seconds);
            coarser bins that are multiples of it are summed locally.
        anchor_severity: rows at or above it are failures whose rows are fetched (WARNING:
            the five-whys correlation reads warnings near failed tries too).
        context_s: rows within this many seconds of a failure on the same instance or trace
            are fetched with it.
        max_rows: the most rows fetched (rows near failures, and WebSocket sessions).
    """

    request_timeout_s: float = 300.0
    tolerance_s: float = 1.0
    gap_s: float = 1.0
    min_severity: str = "ERROR"
    max_examples: int = 3
    bin_s: int = 10
    anchor_severity: str = "WARNING"
    context_s: float = 2.0
    max_rows: int = 20_000

    def __post_init__(self) -> None:
        checks = (
            ("request_timeout_s", 0 < self.request_timeout_s <= 3600, "above 0 and at most 3600"),
            ("tolerance_s", self.tolerance_s >= 0, "0 or more"),
            ("gap_s", self.gap_s >= 0, "0 or more"),
            ("min_severity", self.min_severity in SEVERITY_RANK, "a severity such as ERROR"),
            ("anchor_severity", self.anchor_severity in SEVERITY_RANK, "a severity: WARNING"),
            ("max_examples", self.max_examples >= 1, "1 or more"),
            ("bin_s", self.bin_s >= 1, "whole seconds, 1 or more"),
            ("context_s", self.context_s >= 0, "0 or more"),
            ("max_rows", self.max_rows >= 1, "1 or more"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise UsageError(
                    f"{name}={getattr(self, name)!r} is out of range", expected=expected
                )

    def params(self) -> dict[str, Param]:
        """The settings as query parameters."""
        return {
            "timeout_s": Param("FLOAT64", float(self.request_timeout_s)),
            "tolerance_s": Param("FLOAT64", float(self.tolerance_s)),
            "gap_us": Param("INT64", round(self.gap_s * 1e6)),
            "err_rank": Param("INT64", SEVERITY_RANK[self.min_severity]),
            "anchor_rank": Param("INT64", SEVERITY_RANK[self.anchor_severity]),
            "max_examples": Param("INT64", int(self.max_examples)),
            "bin_us": Param("INT64", int(self.bin_s) * 1_000_000),
            "context_us": Param("INT64", round(self.context_s * 1e6)),
            "bucket_us": Param("INT64", max(round(self.context_s * 1e6), 1)),
            "max_rows": Param("INT64", int(self.max_rows)),
        }


def _with(
    query: LogQuery, table: str, settings: PushdownSettings, *parts: str
) -> tuple[str, dict[str, Param]]:
    base, params = base_ctes(table, query)
    params.update(settings.params())
    return "WITH " + ",\n".join([base, *(p.strip() for p in parts)]), params


def aggregate_queries(
    table: str, query: LogQuery, settings: PushdownSettings
) -> dict[str, SqlQuery]:
    """Every aggregate query of a pushed-down load, by name."""
    built: dict[str, SqlQuery] = {}

    def add(name: str, select: str, *parts: str) -> None:
        ctes, params = _with(query, table, settings, *parts)
        built[name] = SqlQuery(name, f"{ctes}\n{select.strip()}", params)

    add("counts", """
SELECT 'matched' AS dim, CAST(NULL AS STRING) AS key, COUNT(*) AS n,
       MIN(timestamp) AS first, MAX(timestamp) AS last FROM matched
UNION ALL
SELECT 'entries', CAST(NULL AS STRING), COUNT(*), MIN(timestamp), MAX(timestamp) FROM entries
UNION ALL
SELECT 'severity', severity, COUNT(*), CAST(NULL AS TIMESTAMP), CAST(NULL AS TIMESTAMP)
FROM entries GROUP BY severity
UNION ALL
SELECT 'log_kind', log_kind, COUNT(*), CAST(NULL AS TIMESTAMP), CAST(NULL AS TIMESTAMP)
FROM entries GROUP BY log_kind
UNION ALL
SELECT 'close_code', CAST(ws_close_code AS STRING), COUNT(*), CAST(NULL AS TIMESTAMP),
       CAST(NULL AS TIMESTAMP)
FROM entries WHERE ws_close_code IS NOT NULL GROUP BY ws_close_code
""")
    add("severity_bins", """
SELECT TIMESTAMP_MICROS(DIV(UNIX_MICROS(timestamp), @bin_us) * @bin_us) AS time,
       severity, COUNT(*) AS n
FROM entries GROUP BY time, severity
""")
    add("signatures", """
SELECT template, COUNT(*) AS count, MIN(timestamp) AS first_seen, MAX(timestamp) AS last_seen,
  STRING_AGG(DISTINCT revision, ',' ORDER BY revision) AS revisions,
  COUNT(DISTINCT instance_id) AS instances,
  MAX(severity_rank) AS severity_rank,
  MAX(CASE WHEN ex_rank = 1 THEN example END) AS example,
  STRING_AGG(CASE WHEN id_rank <= @max_examples THEN insert_id END, ','
             ORDER BY timestamp, insert_id) AS insert_ids
FROM (
  SELECT *,
    ROW_NUMBER() OVER (PARTITION BY template ORDER BY timestamp, insert_id) AS ex_rank,
    ROW_NUMBER() OVER (PARTITION BY template, insert_id IS NULL
                       ORDER BY timestamp, insert_id) AS id_rank
  FROM ev_sig
)
GROUP BY template
""", TRACEBACK, EVENTS)
    add("error_counts", """
SELECT bin AS timestamp, revision, template, COUNT(*) AS n
FROM (
  SELECT TIMESTAMP_MICROS(origin + DIV(UNIX_MICROS(timestamp) - origin, @bin_us) * @bin_us)
           AS bin, revision, template
  FROM ev_sig CROSS JOIN (
    -- bins start at the first entry's whole second, where error_waves starts its own
    SELECT UNIX_MICROS(TIMESTAMP_TRUNC(MIN(timestamp), SECOND)) AS origin FROM entries)
)
GROUP BY bin, revision, template
""", TRACEBACK, EVENTS)
    add("revisions", """
SELECT revision, MAX(first_service) AS service, MIN(timestamp) AS first_seen,
  MAX(timestamp) AS last_seen, COUNT(*) AS entries,
  COUNT(DISTINCT instance_id) AS instances,
  CAST(COUNTIF(log_kind = 'request' AND http_status = 101) AS INT64) AS ws_sessions
FROM (
  SELECT *, FIRST_VALUE(service IGNORE NULLS) OVER (PARTITION BY revision
    ORDER BY timestamp, insert_id ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    AS first_service
  FROM entries
)
GROUP BY revision
""")
    add("revision_firsts", """
SELECT service, revision, MIN(timestamp) AS first_seen
FROM entries WHERE revision IS NOT NULL GROUP BY service, revision
""")
    whens = []
    for event, kinds, pattern in INSTANCE_EVENT_PATTERNS:
        flags = "(?i)" if pattern.flags & 2 else ""
        whens.append(
            f"WHEN log_kind IN {in_list(kinds)} AND REGEXP_CONTAINS(message, "
            f"{sql_string(flags + pattern.pattern)}) THEN {sql_string(event)}"
        )
    add("instance_found", f"""
SELECT timestamp AS time, instance_id, revision, event,
  CASE WHEN log_kind = 'system' THEN 'system' ELSE 'app' END AS source, message
FROM (
  SELECT *, CASE {" ".join(whens)} END AS event
  FROM entries
  WHERE log_kind IN ('system', 'stdout', 'stderr') AND message IS NOT NULL
)
WHERE event IS NOT NULL
""")
    add("instance_bounds", """
SELECT instance_id, MIN(timestamp) AS first_time, MAX(first_revision) AS first_revision,
  MAX(timestamp) AS last_time, MAX(last_revision) AS last_revision
FROM (
  SELECT *,
    FIRST_VALUE(revision) OVER w AS first_revision,
    LAST_VALUE(revision) OVER w AS last_revision
  FROM entries
  WHERE instance_id IS NOT NULL
  WINDOW w AS (PARTITION BY instance_id ORDER BY timestamp, insert_id
               ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
)
GROUP BY instance_id
""")
    add("sessions", """
SELECT revision, COUNT(*) AS n,
  CAST(COUNTIF(COALESCE(ABS(http_latency_s - @timeout_s) <= @tolerance_s, FALSE)) AS INT64)
    AS at_timeout,
  CAST(COUNTIF(http_latency_s IS NULL) AS INT64) AS unknown_duration,
  MAX(http_latency_s) AS max_s, MAX(p50) AS p50_s, MAX(p95) AS p95_s
FROM (
  SELECT *,
    PERCENTILE_CONT(http_latency_s, 0.5) OVER () AS p50,
    PERCENTILE_CONT(http_latency_s, 0.95) OVER () AS p95
  FROM entries WHERE log_kind = 'request' AND http_status = 101
)
GROUP BY revision
""")
    add("session_rows", """
SELECT timestamp AS start, http_latency_s AS duration_s, revision, instance_id, trace,
  http_path, http_user_agent AS user_agent, http_remote_ip AS remote_ip, insert_id,
  COUNT(*) OVER () AS total
FROM entries WHERE log_kind = 'request' AND http_status = 101
ORDER BY start, insert_id
LIMIT @max_rows
""")
    return built


#: Raw columns of a fetched row, rebuilt into a LogEntry by ``bigquery_rows.entry_of``.
#: The columns of a fetched row (what ``bigquery_results.entry_of`` rebuilds a LogEntry
#: from), each read straight from the view.
RAW_EXPRESSIONS: Final = {
    "timestamp": "timestamp",
    "receive_timestamp": "receive_timestamp",
    "log_name": "log_name",
    "insert_id": "insert_id",
    "span_id": "span_id",
    "entry_trace": "trace",
    "trace_sampled": "trace_sampled",
    "entry_severity": "severity",
    "resource_type": "resource.type",
    "resource_labels": "TO_JSON_STRING(resource.labels)",
    "entry_labels": "TO_JSON_STRING(labels)",
    "payload": "TO_JSON_STRING(json_payload)",
    "text_payload": "text_payload",
    "proto_payload": "TO_JSON_STRING(proto_payload)",
    "has_http": "http_request IS NOT NULL",
    "http_method": "http_request.request_method",
    "http_url": "http_request.request_url",
    "entry_status": "http_request.status",
    "latency_seconds": "http_request.latency.seconds",
    "latency_nanos": "http_request.latency.nanos",
    "request_size": "http_request.request_size",
    "response_size": "http_request.response_size",
    "http_user_agent": "http_request.user_agent",
    "http_remote_ip": "http_request.remote_ip",
    "server_ip": "http_request.server_ip",
    "referer": "http_request.referer",
    "protocol": "http_request.protocol",
}
RAW_COLUMNS: Final = tuple(RAW_EXPRESSIONS)


def near_failure_query(table: str, query: LogQuery, settings: PushdownSettings) -> SqlQuery:
    """The rows near failures, raw (for the normalizer), at most ``max_rows``, anchors first.

    A row is an anchor when it is at or above ``anchor_severity`` (incl. inferred), a line
    of a split traceback, a system log, a 5xx request, a WebSocket session at the timeout,
    or carries a close code other than 1000/1001. Rows within ``context_s`` of an anchor on
    the same instance or trace come with it. ``total`` counts every row near failures
    (fetched or not).
    """
    anchor = """(severity_rank >= @anchor_rank OR in_group OR log_kind = 'system'
      OR (log_kind = 'request' AND (http_status >= 500 OR (http_status = 101
          AND COALESCE(ABS(http_latency_s - @timeout_s) <= @tolerance_s, FALSE))))
      OR (ws_close_code IS NOT NULL AND ws_close_code NOT IN (1000, 1001)))"""
    # Rows near an anchor of the same instance or trace: a semi-join on (key, time bucket of
    # context_s), each anchor covering its bucket and the two beside it, so whole rows are
    # never sorted and each row is compared with the few anchors of its own bucket only.
    def near_anchor(kind: str, key: str) -> str:
        return f"""EXISTS (SELECT 1 FROM anchor_buckets a WHERE a.kind = '{kind}'
        AND a.k = anchored.{key} AND a.b = DIV(UNIX_MICROS(anchored.timestamp), @bucket_us)
        AND ABS(a.t - UNIX_MICROS(anchored.timestamp)) <= @context_us)"""

    def buckets(kind: str, key: str) -> str:
        return f"""SELECT DISTINCT '{kind}' AS kind, {key} AS k,
    DIV(UNIX_MICROS(timestamp), @bucket_us) + d AS b, UNIX_MICROS(timestamp) AS t
  FROM anchored CROSS JOIN UNNEST([-1, 0, 1]) AS d
  WHERE anchor AND {key} IS NOT NULL"""

    near = f"""
anchored AS (SELECT *, {anchor} AS anchor FROM marked),
anchor_buckets AS (
  {buckets("i", "instance_id")}
  UNION ALL
  {buckets("t", "trace")}
),
near AS (
  SELECT *, anchor OR {near_anchor("i", "instance_id")}
    OR {near_anchor("t", "trace")} AS selected
  FROM anchored
)"""
    ctes, params = _with(query, table, settings, TRACEBACK, near)
    # Rows are chosen on a few narrow columns, then read whole from the view for the chosen
    # keys only (a semi-join), so wide rows never go through the windows and the sort.
    columns = ",\n  ".join(f"{expr} AS {name}" for name, expr in RAW_EXPRESSIONS.items())
    where, _ = where_clause(query)
    select = f""",
chosen AS (
  SELECT timestamp, log_name, COALESCE(insert_id, '') AS insert_key, COUNT(*) OVER () AS total
  FROM near WHERE COALESCE(selected, FALSE)
  ORDER BY anchor DESC, timestamp, insert_id
  LIMIT @max_rows
)
SELECT
  {columns},
  (SELECT MAX(total) FROM chosen) AS total
FROM {table} AS t
WHERE {where}
  AND EXISTS (SELECT 1 FROM chosen c WHERE c.timestamp = t.timestamp
              AND c.log_name = t.log_name AND c.insert_key = COALESCE(t.insert_id, ''))
QUALIFY t.insert_id IS NULL
  OR ROW_NUMBER() OVER (PARTITION BY t.insert_id, t.timestamp, t.log_name
                        ORDER BY t.receive_timestamp) = 1
ORDER BY timestamp, insert_id
LIMIT @max_rows"""
    return SqlQuery("near_failures", f"{ctes}{select}", params)
