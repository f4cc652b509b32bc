"""LogQuery: validation, the Cloud Run filter it builds, and query_for's defaults."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from uvs_analysis.errors import UsageError
from uvs_analysis.logs.query import LogQuery, parse_time, query_for, rfc3339

WINDOW = {"start": "2025-09-10T21:00:00Z", "end": "2025-09-10T23:00:00Z"}


def test_filter_always_has_an_explicit_window_and_the_cloud_run_resource() -> None:
    """The generated filter names the resource type and both ends of the window in Z form."""
    text = LogQuery(project="p", **WINDOW).to_filter()  # type: ignore[arg-type]
    assert 'resource.type="cloud_run_revision"' in text
    assert 'timestamp>="2025-09-10T21:00:00.000000Z"' in text
    assert 'timestamp<"2025-09-10T23:00:00.000000Z"' in text


def test_filter_carries_every_parameter() -> None:
    """Service, revision, region, severity, log kinds and the extra clause all reach the filter."""
    query = LogQuery(
        project="netra-staging",
        service="netra-backend-staging",
        revision="netra-backend-staging-00740-47l",
        region="us-central1",
        severity="warning",
        log_kinds=("request", "stderr"),
        extra_filter='textPayload:"1011" OR jsonPayload.close_code=1011',
        **WINDOW,  # type: ignore[arg-type]
    )
    text = query.to_filter()
    assert 'resource.labels.service_name="netra-backend-staging"' in text
    assert 'resource.labels.revision_name="netra-backend-staging-00740-47l"' in text
    assert 'resource.labels.location="us-central1"' in text
    assert "severity>=WARNING" in text
    assert '"projects/netra-staging/logs/run.googleapis.com%2Frequests"' in text
    assert '"projects/netra-staging/logs/run.googleapis.com%2Fstderr"' in text
    assert "stdout" not in text
    assert '(textPayload:"1011" OR jsonPayload.close_code=1011)' in text


def test_offsets_are_normalized_to_utc() -> None:
    """A start with a +02:00 offset becomes the same instant in UTC."""
    query = LogQuery(project="p", start="2025-09-10T23:00:00+02:00", end="2025-09-11T00:00:00Z")
    assert query.start == datetime(2025, 9, 10, 21, 0, tzinfo=UTC)
    assert rfc3339(parse_time("2025-09-10T21:00:00")) == "2025-09-10T21:00:00.000000Z"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"start": "2025-09-10T23:00:00Z", "end": "2025-09-10T21:00:00Z"}, "start < end"),
        ({"start": "yesterday-ish", "end": "2025-09-10T21:00:00Z"}, "ISO-8601"),
        ({**WINDOW, "severity": "LOUD"}, "one of DEFAULT"),
        ({**WINDOW, "log_kinds": ("requests",)}, "Cloud Run logs"),
    ],
)
def test_bad_queries_say_what_was_expected(kwargs: dict[str, object], fragment: str) -> None:
    """Each invalid query raises a UsageError that names the expectation."""
    with pytest.raises(UsageError, match=fragment.replace("(", r"\(")):
        LogQuery(project="p", **kwargs)  # type: ignore[arg-type]


def test_key_is_stable_and_changes_with_the_query() -> None:
    """The cache key depends on every field of the query and nothing else."""
    a = LogQuery(project="p", **WINDOW)  # type: ignore[arg-type]
    b = LogQuery(project="p", **WINDOW)  # type: ignore[arg-type]
    c = LogQuery(project="p", service="s", **WINDOW)  # type: ignore[arg-type]
    assert a.key() == b.key() != c.key()


def test_query_for_a_file_without_parameters_is_none() -> None:
    """A file with no narrowing parameter loads whole (no query)."""
    assert query_for("export.json", start="", end="", service="") is None


def test_query_for_a_file_with_a_service_gets_an_open_window() -> None:
    """Narrowing a file by service alone keeps every timestamp."""
    query = query_for("export.json", service="svc")
    assert query is not None and query.service == "svc"
    assert query.start.year == 1970 and query.end.year == 2100


def test_query_for_cloud_logging_requires_a_window() -> None:
    """Cloud Logging without start/end is refused (the client would add a silent 24 h)."""
    with pytest.raises(UsageError, match="start and end"):
        query_for("cloudlogging://proj", service="svc")
    query = query_for("cloudlogging://proj?endpoint=http://127.0.0.1:1", **WINDOW)
    assert query is not None and query.project == "proj"


def test_query_for_bigquery_needs_a_window_and_takes_the_project():
    """A bigquery:// source, like Cloud Logging, refuses a missing window; the project is read."""
    query = query_for("bigquery://proj/logs_ds?endpoint=http://127.0.0.1:1",
                      start="2025-09-10T21:00:00Z", end="2025-09-10T23:00:00Z")
    assert query is not None and query.project == "proj"
    with pytest.raises(UsageError, match="BigQuery query needs both start and end"):
        query_for("bigquery://proj/logs_ds")
