"""Credential checks of a session, without a socket."""

from __future__ import annotations

import pytest

from uvs_analysis.testbed.auth import AuthFailure, Credentials, mint_token
from uvs_analysis.testbed.faults import TestbedSettings
from uvs_analysis.testbed.server import build_state
from uvs_analysis.testbed.session import DEMO_USER, authenticate


def test_authenticate_paths() -> None:
    """Token, ticket, empty subprotocol token, and no credentials in strict and demo mode."""
    state = build_state(TestbedSettings(), secret="k" * 32, stream=None)
    token = mint_token("k" * 32, "u-1", now=state.clock())
    assert authenticate(Credentials("authorization-header", token=token), state).user_id == "u-1"
    ticket = state.tickets.issue("u-2", now=state.clock())
    assert authenticate(Credentials("ticket-auth", ticket=ticket), state).user_id == "u-2"
    with pytest.raises(AuthFailure, match="TOKEN_EXTRACTION"):
        authenticate(Credentials("jwt-auth-subprotocol", token=""), state)
    with pytest.raises(AuthFailure):
        authenticate(Credentials("none"), state)
    demo = build_state(TestbedSettings(auth_mode="demo"), secret="k" * 32, stream=None)
    assert authenticate(Credentials("none"), demo).user_id == DEMO_USER
