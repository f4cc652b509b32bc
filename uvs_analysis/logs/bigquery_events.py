"""Error events in BigQuery SQL: split tracebacks joined, signature texts, masked templates.

The CTEs here follow ``base_ctes`` (they read ``entries``). ``TRACEBACK`` ends in ``marked``
(every entry, with ``in_group`` for lines of a split traceback) and ``tb_flags``; ``EVENTS``
ends in ``ev_sig``: one row per error event with its ``template`` and ``example``, as
``signatures.error_events`` and ``signatures.error_signatures`` define them.
"""

from __future__ import annotations

from typing import Final

from uvs_analysis.logs import signatures
from uvs_analysis.logs.bigquery_sql import PY_SPACE, mask_sql, sql_string, strip_sql
from uvs_analysis.logs.schema import SEVERITY_RANK

__all__ = ["EVENTS", "TRACEBACK", "in_list"]

_HEADER: Final = signatures._TB_HEADER
_CHAINS: Final = signatures._TB_CHAIN
_EXC: Final = signatures._EXC_LINE.pattern
_LINE_BREAKS: Final = "\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]"


def _lit(text: str) -> str:
    return sql_string(text)


def in_list(values: tuple[str, ...]) -> str:
    """A parenthesized list of string literals."""
    return "(" + ", ".join(_lit(v) for v in values) + ")"


_WIN: Final = "PARTITION BY instance_id ORDER BY pos"
_BEFORE: Final = f"OVER ({_WIN} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"

# Split tracebacks. Each stderr line (per instance, by time) is classified; a "resetting" line
# fixes the state the traceback scanner is in after it (F frames, C chain, E exception, X a
# line that ends every traceback); blank lines and indented chain notices keep it (after E
# they lead to C). A line continues the traceback before it when it is close enough in time and
# its class is accepted in that state; a segment is a run of continuing lines, and a traceback
# starts at the segment's first header line.
TRACEBACK: Final = f"""
tb_lines AS (
  SELECT *,
    ROW_NUMBER() OVER (PARTITION BY instance_id ORDER BY timestamp, insert_id) AS pos,
    TIMESTAMP_DIFF(timestamp, LAG(timestamp) OVER (PARTITION BY instance_id
                   ORDER BY timestamp, insert_id), MICROSECOND) AS gap,
    tb_s = '' OR (tb_ind AND tb_s IN {in_list(_CHAINS)}) AS keeps,
    CASE
      WHEN tb_s = '' OR (tb_ind AND tb_s IN {in_list(_CHAINS)}) THEN NULL
      WHEN tb_ind OR tb_s = {_lit(_HEADER)} THEN 'F'
      WHEN tb_s IN {in_list(_CHAINS)} THEN 'C'
      WHEN REGEXP_CONTAINS(tb_s, {_lit(_EXC)}) THEN 'E'
      ELSE 'X'
    END AS sets
  FROM (
    SELECT *,
      {strip_sql("COALESCE(message, '')")} AS tb_s,
      REGEXP_CONTAINS(COALESCE(message, ''), {_lit("^" + PY_SPACE)}) AS tb_ind
    FROM entries WHERE log_kind = 'stderr'
  )
),
tb_state AS (
  SELECT *,
    CASE WHEN prev_set = 'E' AND prev_pos < pos - 1 THEN 'C' ELSE prev_set END AS state
  FROM (
    SELECT *,
      LAST_VALUE(sets IGNORE NULLS) {_BEFORE} AS prev_set,
      LAST_VALUE(CASE WHEN sets IS NOT NULL THEN pos END IGNORE NULLS) {_BEFORE} AS prev_pos
    FROM tb_lines
  )
),
tb_cont AS (
  SELECT *,
    SUM(CASE WHEN cont THEN 0 ELSE 1 END) OVER ({_WIN} ROWS UNBOUNDED PRECEDING) AS seg
  FROM (
    SELECT *,
      COALESCE(gap <= @gap_us AND (
        keeps
        OR (sets = 'F' AND tb_ind AND tb_s = {_lit(_HEADER)} AND state IN ('F', 'C'))
        OR (sets = 'F' AND tb_ind AND tb_s <> {_lit(_HEADER)} AND state = 'F')
        OR (sets = 'F' AND NOT tb_ind AND state = 'C')
        OR sets = 'C'
        OR (sets = 'E' AND state = 'F')), FALSE) AS cont
    FROM tb_state
  )
),
tb_member AS (
  SELECT *, pos >= first_h AS member
  FROM (
    SELECT *,
      MIN(CASE WHEN tb_s = {_lit(_HEADER)} THEN pos END)
        OVER (PARTITION BY instance_id, seg) AS first_h
    FROM tb_cont
  )
),
tb_flags AS (
  SELECT *,
    COALESCE(member, FALSE)
      AND COUNTIF(COALESCE(member, FALSE)) OVER (PARTITION BY instance_id, seg) >= 2
      AS in_group
  FROM tb_member
),
marked AS (
  SELECT * EXCEPT (pos, gap, keeps, sets, tb_s, tb_ind, prev_set, prev_pos, state, cont,
                   first_h, member)
  FROM tb_flags
  UNION ALL
  SELECT *, CAST(NULL AS INT64) AS seg, FALSE AS in_group
  FROM entries WHERE log_kind <> 'stderr'
)"""

EVENTS: Final = f"""
events AS (
  SELECT timestamp, revision, instance_id, insert_id, log_kind, message, payload,
         http_status, http_method, http_path, severity_rank
  FROM marked
  WHERE NOT in_group AND severity_rank >= @err_rank
  UNION ALL
  SELECT * FROM (
    SELECT
      MIN(CASE WHEN pos = first_h THEN timestamp END) AS timestamp,
      MAX(CASE WHEN pos = first_h THEN revision END) AS revision,
      instance_id,
      MAX(CASE WHEN pos = first_h THEN insert_id END) AS insert_id,
      'stderr' AS log_kind,
      STRING_AGG(COALESCE(message, ''), '\\n' ORDER BY pos) AS message,
      MAX(CASE WHEN pos = first_h THEN payload END) AS payload,
      CAST(NULL AS INT64) AS http_status,
      CAST(NULL AS STRING) AS http_method,
      CAST(NULL AS STRING) AS http_path,
      GREATEST(MAX(severity_rank), {SEVERITY_RANK["ERROR"]}) AS severity_rank
    FROM tb_flags
    WHERE in_group
    GROUP BY instance_id, seg
  )
  WHERE severity_rank >= @err_rank
),
ev AS (
  SELECT ROW_NUMBER() OVER (ORDER BY timestamp, insert_id, message) AS eid, *
  FROM events
),
ev_lines AS (
  SELECT eid, lpos, line, {strip_sql("line")} AS s,
    REGEXP_CONTAINS(line, {_lit("^" + PY_SPACE)}) AS ind
  FROM (
    SELECT eid, lpos, REGEXP_REPLACE(line0, {_lit(PY_SPACE + "+$")}, '') AS line
    FROM ev, UNNEST(SPLIT(REGEXP_REPLACE(COALESCE(message, ''), {_lit(_LINE_BREAKS)}, '\\n'),
                          '\\n')) AS line0 WITH OFFSET AS lpos
  )
),
ev_marks AS (
  SELECT *,
    LAST_VALUE(mark IGNORE NULLS) OVER (PARTITION BY eid ORDER BY lpos
      ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_mark
  FROM (
    SELECT *,
      CASE WHEN s = {_lit(_HEADER)} THEN 'H'
           WHEN s <> '' AND NOT ind AND s NOT IN {in_list(_CHAINS)} THEN 'P' END AS mark
    FROM ev_lines
  )
),
ev_parts AS (
  SELECT eid,
    MAX(first_nb) AS first_nb, MAX(last_nb) AS last_nb, MAX(exc) AS exc,
    LOGICAL_OR(s = {_lit(_HEADER)}) AS has_header
  FROM (
    SELECT eid, s,
      FIRST_VALUE(CASE WHEN s <> '' THEN s END IGNORE NULLS) OVER w AS first_nb,
      LAST_VALUE(CASE WHEN s <> '' THEN s END IGNORE NULLS) OVER w AS last_nb,
      LAST_VALUE(CASE WHEN mark = 'P' AND prev_mark = 'H'
                       AND REGEXP_CONTAINS(s, {_lit(_EXC)}) THEN s END IGNORE NULLS) OVER w AS exc
    FROM ev_marks
    WINDOW w AS (PARTITION BY eid ORDER BY lpos
                 ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
  )
  GROUP BY eid
),
ev_text AS (
  SELECT ev.*,
    CASE WHEN sig = '' AND payload IS NOT NULL THEN SUBSTR(payload, 1, 500) ELSE sig END
      AS text
  FROM ev JOIN (
    SELECT eid,
      CASE WHEN CHAR_LENGTH(raw_sig) <= {signatures.MAX_SIGNATURE_CHARS} THEN raw_sig
           ELSE CONCAT(SUBSTR(raw_sig, 1, {signatures.MAX_SIGNATURE_CHARS - 1}), '…') END AS sig
    FROM (
      SELECT eid,
        CASE WHEN first_nb IS NULL THEN ''
             WHEN NOT has_header THEN first_nb
             WHEN first_nb <> {_lit(_HEADER)} AND first_nb <> COALESCE(exc, last_nb)
               THEN CONCAT(first_nb, ' | ', COALESCE(exc, last_nb))
             ELSE COALESCE(exc, last_nb) END AS raw_sig
      FROM ev_parts
    )
  ) USING (eid)
),
ev_rest AS (
  SELECT *,
    CASE WHEN is_request THEN
      CASE WHEN text <> '' THEN CONCAT(place, ': ', text) ELSE place END
    WHEN text = '' THEN '(empty message)' ELSE text END AS mask_in
  FROM (
    SELECT *,
      log_kind = 'request' AND http_status IS NOT NULL AS is_request,
      CONCAT(COALESCE(http_method, ''),
             CASE WHEN http_method IS NOT NULL AND http_path IS NOT NULL THEN ' ' ELSE '' END,
             COALESCE(http_path, '')) AS place
    FROM ev_text
  )
),
ev_sig AS (
  SELECT *,
    CASE WHEN is_request
      THEN {strip_sql("CONCAT('HTTP ', CAST(http_status AS STRING), ' ', masked)")}
      ELSE masked END AS template,
    COALESCE(message, CASE WHEN is_request
      THEN {strip_sql("CONCAT('HTTP ', CAST(http_status AS STRING), ' ', mask_in)")}
      ELSE mask_in END) AS example
  FROM (SELECT *, {mask_sql("mask_in")} AS masked FROM ev_rest)
)"""
