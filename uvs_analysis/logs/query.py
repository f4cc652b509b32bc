"""What to pull: a typed query and the Cloud Logging filter it becomes.

The time window is always explicit: google-cloud-logging silently appends a 24-hour window to a
filter that does not mention ``timestamp``, so a query without ``start`` and ``end`` is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

import pandas as pd

from uvs_analysis.errors import UsageError
from uvs_analysis.logs.schema import LOG_IDS, SEVERITIES

__all__ = ["DEFAULT_LOG_KINDS", "LogQuery", "parse_time", "query_for", "rfc3339"]

DEFAULT_LOG_KINDS: tuple[str, ...] = ("request", "stdout", "stderr", "system")
_LOG_ID_BY_KIND = {kind: log_id for log_id, kind in LOG_IDS.items()}


def parse_time(value: str | datetime, *, name: str = "time") -> datetime:
    """Parse an ISO-8601 time (any offset, or none meaning UTC) into an aware UTC datetime."""
    if isinstance(value, datetime):
        ts = pd.Timestamp(value)
    else:
        try:
            ts = pd.Timestamp(str(value).strip())
        except (ValueError, TypeError) as exc:
            raise UsageError(
                f"{name} {value!r} is not a time",
                expected="an ISO-8601 time such as 2025-09-10T21:30:00Z",
            ) from exc
    if pd.isna(ts):
        raise UsageError(f"{name} is empty", expected="an ISO-8601 time")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    result: datetime = ts.to_pydatetime()
    return result


def rfc3339(value: datetime) -> str:
    """Render a datetime as the Z-suffixed RFC 3339 form Cloud Logging expects."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LogQuery:
    """A Cloud Run log query.

    Attributes:
        project: GCP project id (for Cloud Logging; informational for files).
        start: window start, inclusive (UTC).
        end: window end, exclusive (UTC).
        service: Cloud Run service name; None means every service.
        revision: one revision only; None means every revision.
        region: Cloud Run region (resource.labels.location); None means every region.
        severity: severity floor (``severity>=``); None keeps everything, including stderr
            lines without severity.
        log_kinds: which Cloud Run logs: request, stdout, stderr, system.
        extra_filter: a free-form Logging-query-language clause ANDed to the rest.
    """

    project: str
    start: datetime
    end: datetime
    service: str | None = None
    revision: str | None = None
    region: str | None = None
    severity: str | None = None
    log_kinds: tuple[str, ...] = field(default=DEFAULT_LOG_KINDS)
    extra_filter: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", parse_time(self.start, name="start"))
        object.__setattr__(self, "end", parse_time(self.end, name="end"))
        if self.end <= self.start:
            raise UsageError(
                f"the window ends ({rfc3339(self.end)}) before it starts ({rfc3339(self.start)})",
                expected="start < end",
            )
        if self.severity is not None:
            sev = self.severity.upper()
            if sev not in SEVERITIES:
                raise UsageError(
                    f"severity {self.severity!r} is unknown",
                    expected="one of " + ", ".join(SEVERITIES),
                )
            object.__setattr__(self, "severity", sev)
        kinds = tuple(self.log_kinds)
        unknown = [k for k in kinds if k not in _LOG_ID_BY_KIND]
        if unknown or not kinds:
            raise UsageError(
                f"log kinds {unknown or '(none)'} are not Cloud Run logs",
                expected="one or more of " + ", ".join(_LOG_ID_BY_KIND),
            )
        object.__setattr__(self, "log_kinds", kinds)

    def to_filter(self) -> str:
        """The Cloud Logging filter for this query (always with an explicit time window)."""
        clauses = ['resource.type="cloud_run_revision"']
        if self.service:
            clauses.append(f"resource.labels.service_name={_quote(self.service)}")
        if self.revision:
            clauses.append(f"resource.labels.revision_name={_quote(self.revision)}")
        if self.region:
            clauses.append(f"resource.labels.location={_quote(self.region)}")
        clauses.append(f'timestamp>="{rfc3339(self.start)}"')
        clauses.append(f'timestamp<"{rfc3339(self.end)}"')
        if set(self.log_kinds) != set(_LOG_ID_BY_KIND):
            names = " OR ".join(
                _quote(f"projects/{self.project}/logs/{quote(_LOG_ID_BY_KIND[k], safe='')}")
                for k in self.log_kinds
            )
            clauses.append(f"logName=({names})")
        if self.severity:
            clauses.append(f"severity>={self.severity}")
        if self.extra_filter and self.extra_filter.strip():
            clauses.append(f"({self.extra_filter.strip()})")
        return "\n".join(clauses[:1] + [f"AND {c}" for c in clauses[1:]])

    def key(self) -> str:
        """A stable digest of the whole query (the cache key)."""
        blob = json.dumps(self.describe(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def describe(self) -> dict[str, object]:
        """The query as plain JSON-able values."""
        data = asdict(self)
        data["start"] = rfc3339(self.start)
        data["end"] = rfc3339(self.end)
        data["log_kinds"] = list(self.log_kinds)
        return data


def _quote(value: str) -> str:
    return json.dumps(value)


#: The window used for a file when the user gives none: everything a log export can hold.
WHOLE_FILE_START = "1970-01-01T00:00:00Z"
WHOLE_FILE_END = "2100-01-01T00:00:00Z"


def query_for(
    source: str,
    *,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    service: str | None = None,
    revision: str | None = None,
    region: str | None = None,
    severity: str | None = None,
    log_kinds: tuple[str, ...] | list[str] | None = None,
    extra_filter: str | None = None,
) -> LogQuery | None:
    """The query for a source string, from user-facing parameters ('' means unset).

    Cloud Logging and BigQuery need an explicit window; a file needs none (None is returned when no
    parameter narrows it, so the whole file loads).
    """
    scheme = source.strip().split("://", 1)[0] if "://" in source else ""
    cloud = scheme in ("cloudlogging", "bigquery")
    given = {
        "service": service or None,
        "revision": revision or None,
        "region": region or None,
        "severity": severity or None,
        "extra_filter": extra_filter or None,
    }
    kinds = tuple(log_kinds) if log_kinds else DEFAULT_LOG_KINDS
    if cloud:
        if not start or not end:
            why = ("the client otherwise adds a silent 24-hour one" if scheme == "cloudlogging"
                   else "it bounds the bytes BigQuery scans")
            raise UsageError(
                f"a {'Cloud Logging pull' if scheme == 'cloudlogging' else 'BigQuery query'} "
                "needs both start and end",
                expected="an explicit window such as --start 2025-09-10T21:00:00Z "
                f"--end 2025-09-10T23:00:00Z ({why})",
            )
        project = source.strip().split("://", 1)[1].split("?", 1)[0].strip("/").split("/")[0]
        return LogQuery(project=project, start=start, end=end, log_kinds=kinds, **given)  # type: ignore[arg-type]
    narrowed = any(given.values()) or start or end or set(kinds) != set(DEFAULT_LOG_KINDS)
    if not narrowed:
        return None
    return LogQuery(
        project="local",
        start=start or WHOLE_FILE_START,  # type: ignore[arg-type]
        end=end or WHOLE_FILE_END,  # type: ignore[arg-type]
        log_kinds=kinds,
        **given,  # type: ignore[arg-type]
    )
