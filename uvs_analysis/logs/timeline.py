"""Timeline of a Cloud Run service: revisions, deploys, instance lifecycles and error waves.

Everything here reads a normalized log frame and returns a frame; nothing reads the clock.
Each function also takes a LogLoad: one pushed down to BigQuery is answered from the aggregates
BigQuery computed over every entry (its frame holds only the rows near failures).
"""

from __future__ import annotations

import itertools
import re
from typing import Final

import pandas as pd

from uvs_analysis.errors import UsageError
from uvs_analysis.logs.schema import COLUMNS, SEVERITIES, LogAggregates, LogLoad
from uvs_analysis.logs.signatures import error_events, require_columns, split_load

__all__ = [
    "DEPLOY_COLUMNS",
    "INSTANCE_EVENTS",
    "INSTANCE_EVENT_COLUMNS",
    "INSTANCE_EVENT_PATTERNS",
    "REVISION_COLUMNS",
    "WAVE_COLUMNS",
    "close_code_counts",
    "deploys",
    "error_waves",
    "instance_events",
    "revision_timeline",
    "severity_over_time",
]

_TS: Final = COLUMNS["timestamp"][0]
_STR: Final = "string[pyarrow]"

#: Columns of ``revision_timeline``.
REVISION_COLUMNS: Final = {
    "service": _STR,
    "revision": _STR,  # NA for entries without a revision label
    "first_seen": _TS,
    "last_seen": _TS,
    "entries": "int64",  # log entries of every kind
    "errors": "int64",  # error events (split tracebacks count once)
    "instances": "int64",  # distinct instance ids
    "ws_sessions": "int64",  # status-101 request logs
}

#: Columns of ``deploys``.
DEPLOY_COLUMNS: Final = {
    "time": _TS,  # first entry of the new revision
    "service": _STR,
    "revision": _STR,
    "previous_revision": _STR,  # the revision first seen just before it
}

INSTANCE_EVENTS: Final = ("start", "shutdown", "crash", "oom", "probe_failure")

#: (event, log kinds searched, pattern), tried in order; the first match names the event.
INSTANCE_EVENT_PATTERNS: Final[tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...]] = (
    ("oom", ("system",), re.compile(r"Memory limit of .* exceeded", re.I)),
    ("probe_failure", ("system",), re.compile(r"\bprobe failed\b", re.I)),
    (
        "crash",
        ("system",),
        re.compile(
            r"Container called exit\(-?[1-9][0-9]*\)|Uncaught signal"
            r"|Container terminated on signal|terminated unexpectedly",
            re.I,
        ),
    ),
    ("shutdown", ("system",), re.compile(r"Container called exit\(0\)", re.I)),
    (
        "shutdown",
        ("system", "stdout", "stderr"),
        re.compile(r"\bShutting down\b|\bSIGTERM\b|Handling signal: term\b", re.I),
    ),
    ("start", ("system",), re.compile(r"Starting new instance", re.I)),
)

#: Columns of ``instance_events``.
INSTANCE_EVENT_COLUMNS: Final = {
    "time": _TS,
    "instance_id": _STR,
    "revision": _STR,
    "event": _STR,  # one of INSTANCE_EVENTS
    "source": _STR,  # system, app (stdout/stderr text) or inferred (first/last entry seen)
    "message": _STR,
}

#: Columns of ``error_waves``.
WAVE_COLUMNS: Final = {
    "start": _TS,  # start of the first bin of the wave
    "end": _TS,  # end of the last bin
    "errors": "int64",
    "peak_per_min": "float64",  # the busiest bin's count, per minute
    "baseline_per_min": "float64",  # the median bin's count, per minute
    "top_template": _STR,  # the most frequent error template in the wave
}


def revision_timeline(frame: pd.DataFrame | LogLoad) -> pd.DataFrame:
    """Per revision: first and last entry, entries, error events, instances and sessions.

    Returns:
        The columns ``REVISION_COLUMNS``, one row per revision, by first_seen.
    """
    frame, aggregates = split_load(frame)
    if aggregates is not None:
        return _pushed_revisions(aggregates)
    require_columns(frame, COLUMNS)
    if frame.empty:
        return _empty(REVISION_COLUMNS)
    data = frame.assign(
        is_session=((frame["log_kind"] == "request") & (frame["http_status"] == 101))
        .fillna(False)
        .astype(bool)
    )
    by_revision = data.groupby("revision", dropna=False, sort=False)
    table = pd.DataFrame(
        {
            "service": by_revision["service"].first(),
            "first_seen": by_revision["timestamp"].min(),
            "last_seen": by_revision["timestamp"].max(),
            "entries": by_revision.size(),
            "instances": by_revision["instance_id"].nunique(),
            "ws_sessions": by_revision["is_session"].sum(),
        }
    )
    errors = error_events(frame)["revision"].value_counts(dropna=False)
    table["errors"] = errors.reindex(table.index, fill_value=0)
    table = table.rename_axis("revision").reset_index()
    table = table.sort_values(["first_seen", "revision"], kind="stable", na_position="last")
    return _typed(table.reset_index(drop=True), REVISION_COLUMNS)


def deploys(frame: pd.DataFrame | LogLoad) -> pd.DataFrame:
    """New revisions appearing, per service.

    The earliest revision of each service in the window is the baseline, not a deploy; each
    later revision is a deploy at its first entry, following the revision first seen before it.
    Entries without a revision are left out.

    Returns:
        The columns ``DEPLOY_COLUMNS``, by time.
    """
    frame, aggregates = split_load(frame)
    if aggregates is not None:
        first = aggregates.revision_firsts.rename(columns={"first_seen": "timestamp"})
    else:
        require_columns(frame, COLUMNS)
        known = frame.dropna(subset=["revision", "timestamp"])
        by_revision = known.groupby(["service", "revision"], dropna=False, sort=False)
        first = by_revision["timestamp"].min().reset_index()
    if first.empty:
        return _empty(DEPLOY_COLUMNS)
    first = first.sort_values(["timestamp", "revision"], kind="stable")
    rows = []
    for service, revisions in first.groupby("service", dropna=False, sort=False):
        ordered = revisions.to_dict("records")
        for before, after in itertools.pairwise(ordered):
            rows.append(
                {
                    "time": after["timestamp"],
                    "service": service,
                    "revision": after["revision"],
                    "previous_revision": before["revision"],
                }
            )
    table = pd.DataFrame(rows, columns=list(DEPLOY_COLUMNS))
    table = table.sort_values(["time", "revision"], kind="stable").reset_index(drop=True)
    return _typed(table, DEPLOY_COLUMNS)


def instance_events(frame: pd.DataFrame | LogLoad) -> pd.DataFrame:
    """Instance starts, shutdowns, crashes, OOMs and probe failures.

    Events come from system entries (and shutdown texts on stdout/stderr, see
    ``INSTANCE_EVENT_PATTERNS``). An instance with no start entry gets an inferred ``start`` at
    its first entry; one with no shutdown, crash, OOM or probe-failure entry gets an inferred
    ``shutdown`` at its last entry (which may only be the end of the window).

    Returns:
        The columns ``INSTANCE_EVENT_COLUMNS``, by time.
    """
    frame, aggregates = split_load(frame)
    if aggregates is not None:
        found = aggregates.instance_found
        inferred = _inferred_from_bounds(aggregates.instance_bounds, found)
        table = pd.concat([found, inferred], ignore_index=True) if len(inferred) else found
        table = _typed(table, INSTANCE_EVENT_COLUMNS)
        return table.sort_values(["time", "instance_id"], kind="stable").reset_index(drop=True)
    require_columns(frame, COLUMNS)
    rows = []
    candidates = frame.loc[frame["log_kind"].isin(["system", "stdout", "stderr"]).fillna(False)]
    candidates = candidates.dropna(subset=["message"])
    for t, instance, revision, kind, message in zip(
        candidates["timestamp"],
        candidates["instance_id"],
        candidates["revision"],
        candidates["log_kind"],
        candidates["message"],
        strict=True,
    ):
        event = _classify(str(kind), str(message))
        if event is not None:
            source = "system" if kind == "system" else "app"
            rows.append((t, instance, revision, event, source, message))
    found = pd.DataFrame(rows, columns=list(INSTANCE_EVENT_COLUMNS))
    inferred = _inferred_events(frame, found)
    table = pd.concat([found, inferred], ignore_index=True) if len(inferred) else found
    table = _typed(table, INSTANCE_EVENT_COLUMNS)
    return table.sort_values(["time", "instance_id"], kind="stable").reset_index(drop=True)


def error_waves(
    frame: pd.DataFrame | LogLoad, *, bin_s: float = 60, factor: float = 3.0, min_errors: int = 5
) -> pd.DataFrame:
    """Bursts of errors well above the usual rate.

    Error events are counted in ``bin_s`` bins over the whole span of the frame (empty bins
    count as 0). A wave is a run of consecutive bins each holding more than ``factor`` times the
    median bin count (and at least one error), with ``min_errors`` errors or more in total.

    Returns:
        The columns ``WAVE_COLUMNS``, by start. ``attrs["without_timestamp"]`` counts the error
        events that could not be binned because they have no time.
    """
    frame, aggregates = split_load(frame)
    if aggregates is None:
        require_columns(frame, COLUMNS)
    if not bin_s > 0 or not factor > 0 or not min_errors >= 1:
        raise UsageError(
            f"error_waves(bin_s={bin_s!r}, factor={factor!r}, min_errors={min_errors!r})"
            " has a value out of range",
            expected="bin_s > 0, factor > 0 and min_errors >= 1",
        )
    if aggregates is not None:
        # Binned by BigQuery: exact for bins that are whole multiples of its bin_s.
        if (bin_s % aggregates.bin_s) or bin_s < aggregates.bin_s:
            raise UsageError(
                f"error_waves(bin_s={bin_s!r}) is not a multiple of the {aggregates.bin_s} s "
                "bins BigQuery counted",
                expected=f"a multiple of {aggregates.bin_s} s such as 60",
                hint="load again with a smaller bin_s (e.g. ?bin_s=1) for finer bins",
            )
        all_events = aggregates.error_counts.loc[:, ["timestamp", "template", "count"]]
        times = pd.Series([aggregates.first, aggregates.last], dtype=_TS).dropna()
    else:
        all_events = error_events(frame).loc[:, ["timestamp", "template"]].assign(count=1)
        times = frame["timestamp"].dropna()
    events = all_events.dropna(subset=["timestamp"])
    skipped = int(all_events["count"].sum() - events["count"].sum())
    if events.empty or times.empty:
        return _with_skipped(_empty(WAVE_COLUMNS), skipped)
    width = pd.Timedelta(seconds=bin_s)
    origin = times.min().floor("s")
    bins = pd.date_range(origin, times.max(), freq=width)
    slot = ((events["timestamp"] - origin) // width).astype("int64")
    counts = (events["count"].groupby(slot.to_numpy()).sum()
              .reindex(range(len(bins)), fill_value=0).sort_index())
    baseline = float(counts.median())
    hot = (counts > factor * baseline) & (counts > 0)
    run_of_slot = (hot != hot.shift()).cumsum()[hot]
    weighted = events.assign(run=slot.map(run_of_slot).to_numpy())
    templates = weighted.groupby("run")
    per_min = 60.0 / bin_s
    waves = []
    for run_id, run in counts[hot].groupby(run_of_slot):
        if run.sum() < min_errors:
            continue
        first, last = int(run.index[0]), int(run.index[-1])
        waves.append(
            {
                "start": bins[first],
                "end": bins[last] + width,
                "errors": int(run.sum()),
                "peak_per_min": float(run.max()) * per_min,
                "baseline_per_min": baseline * per_min,
                "top_template": _most_common(templates.get_group(run_id)),
            }
        )
    table = _typed(pd.DataFrame(waves, columns=list(WAVE_COLUMNS)), WAVE_COLUMNS)
    return _with_skipped(table, skipped)


def severity_over_time(frame: pd.DataFrame | LogLoad, *, freq: str = "1min") -> pd.DataFrame:
    """Entries per time bin and severity.

    Args:
        frame: a normalized log frame.
        freq: the bin width as a pandas frequency (``"1min"``, ``"30s"``, ``"1h"``).

    Returns:
        A frame indexed by bin start (``time``, UTC, every bin of the span), one int64 column per
        severity present (in ``SEVERITIES`` order; NA counts as DEFAULT).
        ``attrs["without_timestamp"]`` counts the rows left out because they have no time.
        For a load pushed down to BigQuery, ``freq`` must be a multiple of its ``bin_s``.
    """
    frame, aggregates = split_load(frame)
    if aggregates is None:
        require_columns(frame, COLUMNS)
    try:
        offset = pd.Timedelta(freq)
    except (ValueError, TypeError):
        offset = pd.Timedelta(0)
    if not offset > pd.Timedelta(0):
        raise UsageError(
            f"freq {freq!r} is not a time bin",
            expected='a positive fixed width such as "30s", "1min" or "1h"',
        )
    if aggregates is not None:
        return _pushed_severity(aggregates, offset, freq)
    data = frame.dropna(subset=["timestamp"])
    skipped = len(frame) - len(data)
    if data.empty:
        index = pd.DatetimeIndex([], tz="UTC", name="time")
        empty = pd.DataFrame(index=index, columns=pd.Index([], dtype=object), dtype="int64")
        return _with_skipped(empty, skipped)
    severity = data["severity"].astype("string").str.upper().fillna("DEFAULT")
    binned = data["timestamp"].dt.floor(offset)
    counts = pd.crosstab(binned, severity)
    present = [s for s in SEVERITIES if s in counts.columns]
    others = sorted(c for c in counts.columns if c not in SEVERITIES)
    full = pd.date_range(binned.min(), binned.max(), freq=offset, name="time")
    counts = counts.reindex(index=full, columns=present + others, fill_value=0).astype("int64")
    counts.columns.name = None
    return _with_skipped(counts, skipped)


def close_code_counts(frame: pd.DataFrame | LogLoad) -> pd.Series:
    """How often each WebSocket close code appears, most frequent first.

    Returns:
        An int64 Series named ``count``, indexed by close code (``ws_close_code``).
    """
    frame, aggregates = split_load(frame)
    if aggregates is not None:
        counts = pd.Series(dict(aggregates.close_codes), dtype="int64").sort_index(kind="stable")
    else:
        require_columns(frame, ["ws_close_code"])
        codes = frame["ws_close_code"].dropna().astype("int64")
        counts = codes.value_counts().sort_index(kind="stable")
    counts = counts.sort_values(ascending=False, kind="stable").astype("int64")
    counts.index.name = "ws_close_code"
    counts.name = "count"
    return counts


# Private


def _most_common(values: pd.Series | pd.DataFrame) -> str:
    """The most frequent value (of ``template`` weighted by ``count`` for a frame); ties: least."""
    if isinstance(values, pd.DataFrame):
        counts = values.groupby("template")["count"].sum()
    else:
        counts = values.value_counts()
    top = counts[counts == counts.max()]
    return str(min(top.index, key=str))


_FIRST: Final = "first entry of the instance"
_LAST: Final = "last entry of the instance"


def _classify(kind: str, message: str) -> str | None:
    for event, kinds, pattern in INSTANCE_EVENT_PATTERNS:
        if kind in kinds and pattern.search(message):
            return event
    return None


def _inferred_events(frame: pd.DataFrame, found: pd.DataFrame) -> pd.DataFrame:
    seen = frame.dropna(subset=["instance_id", "timestamp"])
    if seen.empty:
        return pd.DataFrame(columns=list(INSTANCE_EVENT_COLUMNS))
    ordered = seen.sort_values("timestamp", kind="stable").groupby("instance_id", sort=True)
    firsts, lasts = ordered.head(1), ordered.tail(1)
    started = set(found.loc[found["event"] == "start", "instance_id"].dropna())
    ended = set(found.loc[found["event"] != "start", "instance_id"].dropna())
    rows = []
    for t, instance, revision in zip(
        firsts["timestamp"], firsts["instance_id"], firsts["revision"], strict=True
    ):
        if instance not in started:
            rows.append((t, instance, revision, "start", "inferred", _FIRST))
    for t, instance, revision in zip(
        lasts["timestamp"], lasts["instance_id"], lasts["revision"], strict=True
    ):
        if instance not in ended:
            rows.append((t, instance, revision, "shutdown", "inferred", _LAST))
    return pd.DataFrame(rows, columns=list(INSTANCE_EVENT_COLUMNS))


def _pushed_revisions(aggregates: LogAggregates) -> pd.DataFrame:
    table = aggregates.revisions.copy()
    counts = aggregates.error_counts
    errors = counts.groupby("revision", dropna=False)["count"].sum()
    table["errors"] = [int(errors.get(r, 0)) if pd.notna(r) else int(
        counts.loc[counts["revision"].isna(), "count"].sum()) for r in table["revision"]]
    table = table.sort_values(["first_seen", "revision"], kind="stable", na_position="last")
    return _typed(table.reset_index(drop=True), REVISION_COLUMNS)


def _pushed_severity(aggregates: LogAggregates, offset: pd.Timedelta, freq: str) -> pd.DataFrame:
    base = pd.Timedelta(seconds=aggregates.bin_s)
    if offset % base:
        raise UsageError(
            f"freq {freq!r} is not a multiple of the {aggregates.bin_s} s bins BigQuery counted",
            expected=f"a multiple of {aggregates.bin_s} s such as \"1min\"",
            hint="load again with a smaller bin_s (e.g. ?bin_s=1) for finer bins",
        )
    bins = aggregates.severity_bins
    if bins.empty:
        index = pd.DatetimeIndex([], tz="UTC", name="time")
        empty = pd.DataFrame(index=index, columns=pd.Index([], dtype=object), dtype="int64")
        return _with_skipped(empty, 0)
    binned = bins["time"].dt.floor(offset)
    counts = bins.assign(time=binned).pivot_table(
        index="time", columns="severity", values="count", aggfunc="sum", fill_value=0
    )
    present = [s for s in SEVERITIES if s in counts.columns]
    others = sorted(c for c in counts.columns if c not in SEVERITIES)
    full = pd.date_range(binned.min(), binned.max(), freq=offset, name="time")
    counts = counts.reindex(index=full, columns=present + others, fill_value=0).astype("int64")
    counts.columns.name = None
    return _with_skipped(counts, 0)


def _inferred_from_bounds(bounds: pd.DataFrame, found: pd.DataFrame) -> pd.DataFrame:
    started = set(found.loc[found["event"] == "start", "instance_id"].dropna())
    ended = set(found.loc[found["event"] != "start", "instance_id"].dropna())
    ordered = bounds.sort_values("instance_id", kind="stable")
    rows = [
        (t, instance, revision, "start", "inferred", _FIRST)
        for t, instance, revision in zip(
            ordered["first_time"], ordered["instance_id"], ordered["first_revision"], strict=True
        )
        if instance not in started
    ]
    rows += [
        (t, instance, revision, "shutdown", "inferred", _LAST)
        for t, instance, revision in zip(
            ordered["last_time"], ordered["instance_id"], ordered["last_revision"], strict=True
        )
        if instance not in ended
    ]
    return pd.DataFrame(rows, columns=list(INSTANCE_EVENT_COLUMNS))


def _with_skipped(table: pd.DataFrame, skipped: int) -> pd.DataFrame:
    table.attrs["without_timestamp"] = int(skipped)
    return table


def _typed(table: pd.DataFrame, dtypes: dict[str, str]) -> pd.DataFrame:
    return table.loc[:, list(dtypes)].astype(dtypes)


def _empty(dtypes: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series([], dtype=dtype) for column, dtype in dtypes.items()})
