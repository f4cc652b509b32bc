"""Cloud Logging source: the real google-cloud-logging client, paced, retried and resumable.

``entries.list`` is read page by page through the client's own HTTP connection (the public
``list_entries`` generator hides the page token, so it cannot resume after a 429). Every page is
spooled to a checkpoint before the next is asked for: an interrupted pull resumes from the last
page token, never re-reading a page it already has and never restarting from the first.
"""

from __future__ import annotations

import json
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from uvs_analysis.errors import (
    BadInputError,
    CredentialsError,
    DependencyMissingError,
    LogPermissionError,
    LogQuotaError,
    LogSourceError,
)
from uvs_analysis.logs.google_client import make_client
from uvs_analysis.logs.query import LogQuery
from uvs_analysis.logs.schema import LogLoad

__all__ = ["CloudLoggingSource", "PullPolicy", "PullProgress", "RateLimiter"]

_RETRIED_STATUS = (429, 500, 503, 504)
_READ_ROLE = "roles/logging.viewer"


@dataclass(frozen=True)
class PullPolicy:
    """How a pull paces and retries itself.

    Attributes:
        page_size: entries per page (the API's maximum is 1000).
        requests_per_minute: client-side pace, kept under the project's entries.list read
            quota (about 60 per minute, shared by everyone in the project); 59 with a
            burst of 2 starts at most 60 requests in any minute.
        burst: requests that may start back to back after a slow page (the quota allows
            ``requests_per_minute + burst - 1`` in any minute).
        max_retries: retries of one page on 429/500/503/504 or a broken connection.
        backoff_initial_s: first backoff; doubles on each retry, with jitter.
        backoff_max_s: longest single backoff.
        timeout_s: HTTP timeout of one request.
        prefetch_pages: pages fetched ahead while earlier ones are normalized.
        seed: seed of the backoff jitter (determinism).
    """

    page_size: int = 1000
    requests_per_minute: float = 59.0
    burst: int = 2
    max_retries: int = 6
    backoff_initial_s: float = 2.0
    backoff_max_s: float = 60.0
    timeout_s: float = 60.0
    prefetch_pages: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= 1000:
            raise BadInputError(
                f"page_size {self.page_size} is out of range", expected="1 to 1000"
            )
        if self.requests_per_minute <= 0:
            raise BadInputError(
                f"requests_per_minute {self.requests_per_minute} is not positive",
                expected="a positive rate such as 55",
            )


class RateLimiter:
    """A token bucket: ``rate_per_minute`` on average, at most ``burst`` back to back.

    In any 60 s a caller starts at most ``burst - 1 + rate_per_minute`` requests, so a pace of
    58 with a burst of 2 stays within a 60-per-minute quota while a page that took longer than
    the interval to process can be caught up with.
    """

    def __init__(
        self,
        rate_per_minute: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 60.0 / rate_per_minute
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = 1.0
        self._stamp: float | None = None
        self.waited_s = 0.0

    def acquire(self) -> None:
        """Block until the next request may start."""
        now = self._clock()
        if self._stamp is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) / self.interval)
        self._stamp = now
        if self._tokens < 1.0:
            wait = (1.0 - self._tokens) * self.interval
            self.waited_s += wait
            self._sleep(wait)
            self._tokens = 1.0
            self._stamp = now + wait
        self._tokens -= 1.0


@dataclass
class PullProgress:
    """Counters of one pull, updated as pages arrive."""

    pages: int = 0
    entries: int = 0
    retries: int = 0
    resumed_pages: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


class _Checkpoint:
    """Spooled pages of one pull: raw entries as NDJSON plus the next page token."""

    def __init__(self, directory: Path, key: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.entries_path = directory / f"{key}.pull.ndjson"
        self.state_path = directory / f"{key}.pull.json"

    def load_state(self, filter_text: str) -> dict[str, Any] | None:
        if not self.state_path.exists():
            return None
        state: dict[str, Any] = json.loads(self.state_path.read_text())
        if state.get("filter") != filter_text:
            self.clear()
            return None
        return state

    def append_page(self, entries: list[dict[str, Any]], state: dict[str, Any]) -> None:
        fd = os.open(self.entries_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            for entry in entries:
                out.write(json.dumps(entry, separators=(",", ":")) + "\n")
        tmp = self.state_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(state, out)
        tmp.replace(self.state_path)

    def spooled(self) -> Iterator[dict[str, Any]]:
        if not self.entries_path.exists():
            return
        with self.entries_path.open(encoding="utf-8") as lines:
            for line in lines:
                yield json.loads(line)

    def clear(self) -> None:
        self.entries_path.unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)


class CloudLoggingSource:
    """Cloud Run logs from the Cloud Logging API (or its local emulator).

    Args:
        project: GCP project id.
        endpoint: API endpoint override, e.g. ``http://127.0.0.1:8085`` for the emulator;
            anonymous credentials are used with an endpoint override.
        policy: paging, pacing and retry policy.
        checkpoint_dir: where pages are spooled so an interrupted pull can resume; None keeps
            the resume state in memory only (retries still never re-read a page).
        clock, sleep: injected for determinism in tests.
    """

    def __init__(
        self,
        project: str,
        *,
        endpoint: str | None = None,
        policy: PullPolicy | None = None,
        checkpoint_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not project:
            raise BadInputError(
                "the Cloud Logging source has no project",
                expected="cloudlogging://PROJECT[?endpoint=URL]",
            )
        self.project = project
        self.endpoint = endpoint
        self.policy = policy or PullPolicy()
        self.checkpoint_dir = checkpoint_dir
        self._clock = clock
        self._sleep = sleep
        self._connection: Any = None
        self.progress = PullProgress()

    def describe(self) -> str:
        """The source as a URL (no secrets: credentials are never part of it)."""
        suffix = f"?endpoint={self.endpoint}" if self.endpoint else ""
        return f"cloudlogging://{self.project}{suffix}"

    # Public

    def load(
        self, query: LogQuery | None = None, *, progress: Callable[[int], None] | None = None
    ) -> LogLoad:
        """Pull every entry matching ``query`` and normalize them.

        Raises:
            CredentialsError, LogPermissionError, LogQuotaError, LogSourceError, BadInputError.
        """
        if query is None:
            raise BadInputError(
                "a Cloud Logging pull needs a query with an explicit time window",
                expected="start and end (the client would otherwise add a silent 24-hour window)",
            )
        from uvs_analysis.logs.normalize import normalize_records

        self.progress = PullProgress()
        checkpoint = self._checkpoint(query)
        load = normalize_records(
            self.entries(query, progress=progress, checkpoint=checkpoint),
            source=self.describe(),
        )
        if checkpoint is not None:
            checkpoint.clear()
        meta = dict(load.meta)
        meta.update(
            filter=query.to_filter(),
            pages=self.progress.pages,
            retries=self.progress.retries,
            resumed_pages=self.progress.resumed_pages,
        )
        result: LogLoad = replace(load, meta=meta)
        return result

    def entries(
        self,
        query: LogQuery,
        *,
        progress: Callable[[int], None] | None = None,
        checkpoint: Any = None,
    ) -> Iterator[dict[str, Any]]:
        """Raw LogEntry dicts, page by page, resuming from a checkpoint when one exists."""
        filter_text = query.to_filter()
        body: dict[str, Any] = {
            "resourceNames": [f"projects/{self.project}"],
            "filter": filter_text,
            "orderBy": "timestamp asc",
            "pageSize": self.policy.page_size,
        }
        token: str | None = None
        state = checkpoint.load_state(filter_text) if checkpoint is not None else None
        if state is not None:
            for entry in checkpoint.spooled():
                self.progress.entries += 1
                yield entry
            token = state.get("next_token")
            self.progress.resumed_pages = int(state.get("pages", 0))
            self.progress.pages = self.progress.resumed_pages
            if progress:
                progress(self.progress.entries)
            if not token:
                return
        limiter = RateLimiter(
            self.policy.requests_per_minute,
            burst=self.policy.burst,
            clock=self._clock,
            sleep=self._sleep,
        )
        pages: queue.Queue[list[dict[str, Any]] | BaseException | None] = queue.Queue(
            maxsize=self.policy.prefetch_pages
        )
        stop = threading.Event()

        def put(item: list[dict[str, Any]] | BaseException | None) -> None:
            while not stop.is_set():
                try:
                    pages.put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue

        def fetch_pages(next_token: str | None) -> None:
            # Pages are fetched (paced) in this thread while the caller normalizes the
            # previous ones, so normalization does not eat into the quota's interval.
            try:
                jitter = random.Random(self.policy.seed)
                while not stop.is_set():
                    request = dict(body, pageToken=next_token) if next_token else body
                    page = self._fetch_page(request, limiter, jitter)
                    entries = list(page.get("entries") or [])
                    next_token = page.get("nextPageToken") or None
                    self.progress.pages += 1
                    self.progress.entries += len(entries)
                    if checkpoint is not None:
                        checkpoint.append_page(
                            entries,
                            {"filter": filter_text, "next_token": next_token,
                             "pages": self.progress.pages},
                        )
                    put(entries)
                    if not next_token:
                        break
                put(None)
            except BaseException as exc:  # handed to the consuming thread
                put(exc)

        fetcher = threading.Thread(target=fetch_pages, args=(token,), daemon=True,
                                   name="cloud-logging-pull")
        fetcher.start()
        try:
            while True:
                item = pages.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield from item
                if progress:
                    progress(self.progress.entries)
        finally:
            stop.set()
            fetcher.join(timeout=5.0)

    # Private

    def _client_connection(self) -> Any:
        if self._connection is not None:
            return self._connection
        try:
            from google.cloud import logging as gl
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise DependencyMissingError(
                "google-cloud-logging is not importable",
                hint="run `make env` to install the project's dependencies",
            ) from exc
        client = make_client(
            lambda credentials, options: gl.Client(  # type: ignore[no-untyped-call]
                project=self.project,
                credentials=credentials,
                _use_grpc=False,
                client_options=options,
            ),
            endpoint=self.endpoint,
            purpose=f"read logs of project {self.project!r}",
        )
        self._connection = client._connection
        return self._connection

    def _fetch_page(
        self, request: Mapping[str, Any], limiter: RateLimiter, jitter: random.Random
    ) -> dict[str, Any]:
        from google.api_core import exceptions as gexc
        from requests import exceptions as rexc

        connection = self._client_connection()
        broken = (rexc.ConnectionError, rexc.Timeout, rexc.ChunkedEncodingError,
                   rexc.ContentDecodingError)
        attempt = 0
        while True:
            limiter.acquire()
            try:
                result: dict[str, Any] = connection.api_request(
                    method="POST",
                    path="/entries:list",
                    data=dict(request),
                    timeout=self.policy.timeout_s,
                )
                self._count("200")
                return result
            except gexc.Forbidden as exc:
                self._count("403")
                raise LogPermissionError(
                    f"Cloud Logging refused entries.list on project {self.project!r} (403: "
                    f"{exc.message})",
                    expected=f"a caller with {_READ_ROLE} (permission logging.logEntries.list)",
                    hint=f"ask a project owner to grant {_READ_ROLE} to your account: "
                    f"gcloud projects add-iam-policy-binding {self.project} "
                    f"--member=user:YOU --role={_READ_ROLE}",
                ) from exc
            except gexc.Unauthorized as exc:
                self._count("401")
                raise CredentialsError(
                    f"Cloud Logging rejected the credentials (401: {exc.message})",
                    expected="valid Application Default Credentials",
                    hint="run `gcloud auth application-default login` and re-run",
                ) from exc
            except gexc.BadRequest as exc:
                self._count("400")
                raise BadInputError(
                    f"Cloud Logging rejected the query (400: {exc.message})",
                    expected="a valid Logging query language filter",
                    hint="fix the extra filter clause (the rest is generated from the query)",
                ) from exc
            except (gexc.GoogleAPICallError, *broken) as exc:
                status = getattr(exc, "code", None)
                retriable = not isinstance(exc, gexc.GoogleAPICallError) or (
                    status in _RETRIED_STATUS
                )
                self._count(str(status or type(exc).__name__))
                if not retriable:
                    raise LogSourceError(
                        f"Cloud Logging failed ({status}: {getattr(exc, 'message', exc)})",
                        hint="re-run; pages already pulled are kept and the pull resumes",
                    ) from exc
                if attempt >= self.policy.max_retries:
                    where = f"at page {self.progress.pages + 1}"
                    if status is None:  # the connection itself failed every time
                        raise LogSourceError(
                            f"Cloud Logging at {self.endpoint or 'logging.googleapis.com'} could "
                            f"not be reached after {attempt} retries ({type(exc).__name__}: "
                            f"{exc}) {where}",
                            expected="a reachable Cloud Logging API endpoint",
                            hint="check the network (and ?endpoint=URL if you set one), then "
                            "re-run: pages already pulled are kept and the pull resumes",
                        ) from exc
                    cls = LogQuotaError if status == 429 else LogSourceError
                    raise cls(
                        f"Cloud Logging kept failing after {attempt} retries "
                        f"(last: {status}) {where}",
                        expected="the read quota (about 60 entries.list per minute per project) "
                        "to recover",
                        hint="re-run later: pages already pulled are kept and the pull resumes "
                        "from the last page token; lower the pace with requests_per_minute",
                    ) from exc
                delay = min(self.policy.backoff_max_s, self.policy.backoff_initial_s * 2**attempt)
                delay *= 0.5 + jitter.random() / 2
                attempt += 1
                self.progress.retries += 1
                self._sleep(delay)

    def _count(self, status: str) -> None:
        self.progress.statuses[status] = self.progress.statuses.get(status, 0) + 1

    def _checkpoint(self, query: LogQuery) -> _Checkpoint | None:
        if self.checkpoint_dir is None:
            return None
        return _Checkpoint(self.checkpoint_dir, f"{self.project}-{query.key()}")
