"""A pull stored as Parquet under a key derived from the whole query.

Re-running a notebook or a report reads the snapshot (reproducible, no quota or bytes spent);
``refresh=True`` pulls again. Beside each snapshot a JSON file records when and how it was
pulled. A load pushed down to BigQuery keeps its aggregates too: each table as Parquet
(``KEY.agg-NAME.parquet``), the counts and settings in the JSON file. Files are written
atomically and readable by the user only.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from uvs_analysis import __version__
from uvs_analysis.logs.query import LogQuery, rfc3339
from uvs_analysis.logs.schema import COLUMNS, BadRecord, LogAggregates, LogLoad

__all__ = ["CacheEntry", "LogCache"]


@dataclass(frozen=True)
class CacheEntry:
    """Where a snapshot lives and how it was pulled."""

    key: str
    data_path: Path
    meta_path: Path
    meta: dict[str, Any]


class LogCache:
    """Parquet snapshots of pulls, one per (source, query)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def key(self, source: str, query: LogQuery) -> str:
        """The cache key: a digest of the source URL and the whole query."""
        blob = json.dumps({"source": source, "query": query.describe()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def entry(self, source: str, query: LogQuery) -> CacheEntry | None:
        """The snapshot for this pull, or None when there is none."""
        key = self.key(source, query)
        data_path, meta_path = self._paths(key)
        if not (data_path.exists() and meta_path.exists()):
            return None
        return CacheEntry(key, data_path, meta_path, json.loads(meta_path.read_text()))

    def get(self, source: str, query: LogQuery) -> LogLoad | None:
        """The cached LogLoad, or None."""
        found = self.entry(source, query)
        if found is None:
            return None
        frame = pd.read_parquet(found.data_path)
        frame = frame.astype({name: dtype for name, (dtype, _) in COLUMNS.items()})
        meta = found.meta
        accounting = meta["accounting"]
        return LogLoad(
            frame=frame,
            source=source,
            read=accounting["read"],
            bad_records=tuple(BadRecord(**bad) for bad in meta.get("bad_records", [])),
            bad_total=accounting["bad_total"],
            duplicates=accounting["duplicates"],
            filtered_out=accounting["filtered_out"],
            meta={**meta.get("pull", {}), "cache": {"key": found.key, "hit": True,
                                                     "pulled_at": meta["pulled_at"]}},
            aggregates=self._read_aggregates(found.key, meta.get("aggregates")),
        )

    def put(self, source: str, query: LogQuery, load: LogLoad, *, pulled_at: datetime) -> Path:
        """Store a pull; returns the Parquet path."""
        key = self.key(source, query)
        data_path, meta_path = self._paths(key)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = data_path.with_suffix(".parquet.tmp")
        load.frame.to_parquet(tmp, index=False)
        tmp.chmod(0o600)
        tmp.replace(data_path)
        meta = {
            "key": key,
            "source": source,
            "query": query.describe(),
            "filter": query.to_filter(),
            "pulled_at": rfc3339(pulled_at),
            "package_version": __version__,
            "accounting": {
                "read": load.read,
                "entries": len(load.frame),
                "bad_total": load.bad_total,
                "duplicates": load.duplicates,
                "filtered_out": load.filtered_out,
            },
            "bad_records": [bad.__dict__ for bad in load.bad_records],
            "pull": {k: v for k, v in load.meta.items() if _jsonable(v)},
        }
        if load.aggregates is not None:
            meta["aggregates"] = self._write_aggregates(key, load.aggregates)
        _write_private(meta_path, json.dumps(meta, indent=2, default=str))
        return data_path

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.parquet", self.root / f"{key}.json"

    def _table_path(self, key: str, name: str) -> Path:
        return self.root / f"{key}.agg-{name}.parquet"

    def _write_aggregates(self, key: str, agg: LogAggregates) -> dict[str, Any]:
        """Write the tables of ``agg`` as Parquet; return the rest as JSON-ready values."""
        out: dict[str, Any] = {}
        for f in fields(agg):
            value = getattr(agg, f.name)
            if isinstance(value, pd.DataFrame):
                path = self._table_path(key, f.name)
                tmp = path.with_suffix(".parquet.tmp")
                value.to_parquet(tmp, index=False)
                tmp.chmod(0o600)
                tmp.replace(path)
            elif isinstance(value, pd.Timestamp):
                out[f.name] = value.isoformat()
            elif f.name == "close_codes":
                out[f.name] = [[int(code), int(n)] for code, n in value.items()]
            elif isinstance(value, Mapping):
                out[f.name] = dict(value)
            else:
                out[f.name] = value
        return out

    def _read_aggregates(self, key: str, stored: dict[str, Any] | None) -> LogAggregates | None:
        if stored is None:
            return None
        values: dict[str, Any] = {}
        for f in fields(LogAggregates):
            path = self._table_path(key, f.name)
            if f.name in stored:
                value = stored[f.name]
                if f.name in ("first", "last"):
                    value = pd.Timestamp(value) if value is not None else None
                elif f.name == "close_codes":
                    value = {int(code): int(n) for code, n in value}
                values[f.name] = value
            elif path.exists():
                values[f.name] = _lists_back(pd.read_parquet(path))
            else:
                return None  # a snapshot written by another version: pull again
        return LogAggregates(**values)


def _lists_back(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet returns list cells as NumPy arrays: make them lists again."""
    for column in frame.columns:
        if frame[column].dtype == object and frame[column].map(
            lambda v: isinstance(v, np.ndarray)
        ).any():
            frame[column] = frame[column].map(
                lambda v: v.tolist() if isinstance(v, np.ndarray) else v
            )
    return frame


def _jsonable(value: object) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    tmp.replace(path)
