"""A fixture that keeps a test directory's tests on the loopback (import it in a conftest)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

__all__ = ["local_network_only"]


@pytest.fixture(autouse=True)
def local_network_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse name lookups of anything but the loopback, and fail the test if one was tried.

    google-cloud-logging asks metadata.google.internal for the monitored resource whenever an
    entry's logName is under the client's own project, so tests read with another project.
    """
    blocked: list[str] = []
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in ("127.0.0.1", "localhost", "::1"):
            blocked.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"tests stay on 127.0.0.1, not {name}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    yield blocked
    assert blocked == [], f"a test tried to reach {sorted(set(blocked))}"
