"""The one error module of uvs-analysis.

Every error a user can cause or meet says three things: what was wrong (and where: file, line,
parameter), what was expected, and what to do about it. The CLI maps the tree to exit codes:

    UvsAnalysisError                 exit 1 unless a subclass says otherwise
    ├── BadInputError                exit 2: a file, record or value the user gave is not usable
    │   ├── NotALogExportError       a file is not a Cloud Logging export
    │   └── UsageError               bad command-line usage or parameters
    ├── LogSourceError               a log source could not deliver
    │   ├── CredentialsError         no Google credentials (exit 2: the user must act)
    │   ├── LogPermissionError       403 from Cloud Logging (exit 2: a role is missing)
    │   └── LogQuotaError            the read quota stayed exhausted past the retry budget
    ├── FilterSyntaxError            a Logging-query-language filter could not be parsed
    ├── DependencyMissingError       an optional tool or package is not installed
    └── AnalysisError                an analysis could not complete (exit 1)
"""

from __future__ import annotations

__all__ = [
    "AnalysisError",
    "BadInputError",
    "CredentialsError",
    "DependencyMissingError",
    "FilterSyntaxError",
    "LogPermissionError",
    "LogQuotaError",
    "LogSourceError",
    "NotALogExportError",
    "UsageError",
    "UvsAnalysisError",
]


class UvsAnalysisError(Exception):
    """Root of every error the workbook raises on purpose.

    Args:
        what: what was wrong, naming the file, line or parameter involved.
        expected: what would have been right.
        hint: what the user can do next.
    """

    exit_code = 1

    def __init__(self, what: str, *, expected: str | None = None, hint: str | None = None):
        self.what = what
        self.expected = expected
        self.hint = hint
        super().__init__(self.message)

    @property
    def message(self) -> str:
        parts = [self.what.rstrip(".") + "."]
        if self.expected:
            parts.append(f"Expected {self.expected.rstrip('.')}.")
        if self.hint:
            parts.append(self.hint.rstrip(".") + ".")
        return " ".join(parts)


class BadInputError(UvsAnalysisError):
    """A file, record or value given by the user cannot be used."""

    exit_code = 2


class NotALogExportError(BadInputError):
    """A file is not a Cloud Logging export (JSON array or NDJSON of LogEntry objects)."""


class UsageError(BadInputError):
    """Bad command-line usage or parameters."""


class LogSourceError(UvsAnalysisError):
    """A log source could not deliver entries."""


class CredentialsError(LogSourceError):
    """No Google credentials were found."""

    exit_code = 2


class LogPermissionError(LogSourceError):
    """Cloud Logging answered 403."""

    exit_code = 2


class LogQuotaError(LogSourceError):
    """The read quota stayed exhausted past the retry budget."""


class FilterSyntaxError(BadInputError):
    """A Logging-query-language filter could not be parsed or is not supported."""


class DependencyMissingError(UvsAnalysisError):
    """An optional tool or package is not installed."""

    exit_code = 2


class AnalysisError(UvsAnalysisError):
    """An analysis could not complete."""
