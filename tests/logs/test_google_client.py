"""Cloud clients: anonymous at a local endpoint, ADC otherwise, clear missing-credential errors."""

from __future__ import annotations

from typing import Any

import pytest

from uvs_analysis.errors import CredentialsError
from uvs_analysis.logs.google_client import make_client


def test_an_endpoint_gives_anonymous_credentials_and_its_options() -> None:
    """With an endpoint the factory gets anonymous credentials and that api_endpoint."""
    from google.auth.credentials import AnonymousCredentials

    got = make_client(lambda creds, opts: (creds, opts), endpoint="http://127.0.0.1:1",
                      purpose="test")
    assert isinstance(got[0], AnonymousCredentials)
    assert got[1].api_endpoint == "http://127.0.0.1:1"


def test_without_an_endpoint_the_factory_resolves_adc_and_a_miss_says_how_to_log_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No endpoint: credentials and options are left to the client; missing ADC is explained."""
    from google.cloud import bigquery

    seen: list[Any] = []

    def factory(creds: Any, opts: Any) -> Any:
        seen.append((creds, opts))
        return bigquery.Client(project="proj-a", credentials=creds, client_options=opts)

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    with pytest.raises(CredentialsError, match=r"to query proj-a \(.*gcloud auth "
                       r"application-default login"):
        make_client(factory, endpoint=None, purpose="query proj-a")
    assert seen == [(None, None)]
