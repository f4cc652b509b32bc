"""Making a google-cloud client the way every cloud source does.

Application Default Credentials normally; anonymous credentials and the given API endpoint
when one is set (the local emulator or stand-in). Missing credentials become a
CredentialsError that says how to get them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from uvs_analysis.errors import CredentialsError

__all__ = ["make_client"]

_T = TypeVar("_T")


def make_client(factory: Callable[[Any, Any], _T], *, endpoint: str | None, purpose: str) -> _T:
    """``factory(credentials, client_options)`` with the credentials and options to use.

    Args:
        factory: builds the client from credentials (None: ADC) and client options (or None).
        endpoint: an API endpoint override (anonymous credentials are used with it).
        purpose: what the client is for, for the error ("read logs of project 'p'").

    Raises:
        CredentialsError: no Application Default Credentials were found.
    """
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.auth.exceptions import DefaultCredentialsError

    options = ClientOptions(api_endpoint=endpoint) if endpoint else None
    credentials = AnonymousCredentials() if endpoint else None  # type: ignore[no-untyped-call]
    try:
        return factory(credentials, options)
    except DefaultCredentialsError as exc:
        raise CredentialsError(
            f"no Google credentials were found to {purpose} ({exc})",
            expected="Application Default Credentials",
            hint="run `gcloud auth application-default login` (or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file), then re-run",
        ) from exc
