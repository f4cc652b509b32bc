"""One interface, several log sources, and the one function that loads logs for a run.

A source is named by a string, so notebooks, params files and the CLI all say the same thing:

    sample                               the bundled sample export
    PATH                                 a `gcloud logging read --format=json` array or NDJSON,
                                         optionally gzipped
    cloudlogging://PROJECT               Cloud Logging with Application Default Credentials
    cloudlogging://PROJECT?endpoint=URL  the same API at another endpoint (the local emulator)
    bigquery://PROJECT/DATASET           a Log Analytics linked dataset's _AllLogs view (or a log
                                         sink's run_googleapis_com_* tables), analysed in
                                         BigQuery (only aggregates and the rows near failures
                                         are fetched); options: table=NAME (another table of the
                                         same shape), endpoint=URL (a local stand-in),
                                         max_bytes=N (cost guard per query, 0: none; default
                                         10 GiB), max_rows=N, request_timeout_s=S, context_s=S,
                                         bin_s=S
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from uvs_analysis.errors import BadInputError
from uvs_analysis.logs.query import LogQuery
from uvs_analysis.logs.schema import LogLoad

__all__ = ["LogSource", "load_logs", "open_source"]

CLOUD_SCHEME = "cloudlogging"
BIGQUERY_SCHEME = "bigquery"
_EXPECTED = "a file path, 'sample', cloudlogging://PROJECT[?endpoint=URL] or bigquery://PROJECT/DATASET"


class LogSource(Protocol):
    """Anything that turns a query into a normalized LogLoad."""

    def describe(self) -> str:
        """The source as a URL or path, without secrets."""
        ...

    def load(
        self, query: LogQuery | None = None, *, progress: Callable[[int], None] | None = None
    ) -> LogLoad:
        """Entries matching ``query`` (every entry when None, where the source allows it)."""
        ...


def open_source(spec: str, *, checkpoint_dir: Path | None = None) -> LogSource:
    """The source a string names (see the module docstring)."""
    text = spec.strip()
    if not text:
        raise BadInputError(
            "the log source is empty",
            expected=_EXPECTED,
        )
    if text.startswith(f"{CLOUD_SCHEME}://"):
        from uvs_analysis.logs.cloud import CloudLoggingSource, PullPolicy

        parts = urlsplit(text)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = sorted(set(params) - {"endpoint", "rpm"})
        if unknown:
            raise BadInputError(
                f"log source {spec!r} has unknown options {unknown}",
                expected="only endpoint=URL and rpm=REQUESTS_PER_MINUTE",
            )
        try:
            rpm = float(params.get("rpm", PullPolicy.requests_per_minute))
        except ValueError as exc:
            raise BadInputError(
                f"rpm={params['rpm']!r} in {spec!r} is not a number",
                expected="requests per minute such as 58",
            ) from exc
        return CloudLoggingSource(
            parts.netloc,
            endpoint=params.get("endpoint"),
            policy=PullPolicy(requests_per_minute=rpm),
            checkpoint_dir=checkpoint_dir,
        )
    if text.startswith(f"{BIGQUERY_SCHEME}://"):
        from uvs_analysis.logs.bigquery import bigquery_source

        return bigquery_source(text)
    if "://" in text:
        raise BadInputError(
            f"log source {spec!r} has an unknown scheme",
            expected=_EXPECTED,
        )
    from uvs_analysis.logs.files import FileSource

    if text == "sample":
        from uvs_analysis.logs.sample import BUNDLED_SAMPLE

        return FileSource([BUNDLED_SAMPLE])
    return FileSource([Path(text)])


def load_logs(
    source: str | LogSource,
    query: LogQuery | None = None,
    *,
    cache_dir: Path | str | None = None,
    refresh: bool = False,
    now: Callable[[], datetime] | None = None,
    progress: Callable[[int], None] | None = None,
) -> LogLoad:
    """Load logs for a run, through the Parquet cache for pulls from Cloud Logging and loads
    pushed down to BigQuery (so a re-run spends no quota and no bytes).

    Args:
        source: a source string (see the module docstring) or a LogSource.
        query: what to load; required for Cloud Logging.
        cache_dir: where pulls are cached; None disables the cache.
        refresh: pull again even when a snapshot exists.
        now: the clock that stamps a new snapshot (required with a cache).
        progress: called with the number of entries pulled so far.
    """
    cache_root = Path(cache_dir) if cache_dir else None
    src = (
        open_source(source, checkpoint_dir=cache_root / "pulls" if cache_root else None)
        if isinstance(source, str)
        else source
    )
    name = src.describe()
    cached_schemes = (f"{CLOUD_SCHEME}://", "bigquery://")
    use_cache = cache_root is not None and query is not None and name.startswith(cached_schemes)
    if use_cache:
        from uvs_analysis.logs.cache import LogCache

        assert cache_root is not None and query is not None
        cache = LogCache(cache_root)
        if not refresh:
            hit = cache.get(name, query)
            if hit is not None:
                return hit
        load = src.load(query, progress=progress)
        if now is None:
            raise BadInputError(
                "a cached pull needs a clock to stamp the snapshot",
                expected="now=<callable returning an aware datetime>",
            )
        path = cache.put(name, query, load, pulled_at=now())
        cache_meta = {"key": cache.key(name, query), "hit": False, "path": str(path)}
        return replace(load, meta=dict(load.meta, cache=cache_meta))
    return src.load(query, progress=progress)
