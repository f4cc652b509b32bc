"""Tests for the handshake matrix."""

from __future__ import annotations

from uvs_analysis.replay.matrix import VariantOutcome, matrix_verdict, run_matrix, variants
from uvs_analysis.replay.spec import DEFAULT_MESSAGE, HandshakeSpec, MessageStep, RetryPolicy

from .conftest import CANARY, CANARY_ENV, AgentServer


def vo(feature: str, value: str, label: str) -> VariantOutcome:
    done = 1 if label == "completed" else 0
    return VariantOutcome(feature, value, label, done, 1, ((label, 1),))


def test_verdict_names_the_fixing_feature() -> None:
    """A failing baseline fixed only by changing auth names auth."""
    base = vo("baseline", "header", "closed_before_first_event/1008")
    rows = [vo("auth", "subprotocol:jwt.", "completed"), vo("origin", "none", base.label),
            vo("compression", "off", base.label)]
    verdict = matrix_verdict(base, rows)
    assert verdict.culprit == "auth"
    assert verdict.fixes == ("auth=subprotocol:jwt.",)
    assert "auth" in verdict.explanation


def test_verdict_breaks_and_nothing() -> None:
    """A completing baseline reports what breaks it; no flip names no culprit."""
    base = vo("baseline", "subprotocol:jwt.", "completed")
    verdict = matrix_verdict(base, [vo("auth", "none", "closed_before_first_event/1008"),
                                    vo("origin", "none", "completed")])
    assert verdict.culprit == "auth" and verdict.breaks == ("auth=none",)
    quiet = matrix_verdict(base, [vo("origin", "none", "completed")])
    assert quiet.culprit is None and "No single-feature change" in quiet.explanation


def test_variants_change_one_feature_each() -> None:
    """Each variant differs from the baseline in its own feature only."""
    spec = HandshakeSpec(url="ws://h/ws", subprotocols=("jwt.{token}",), token_env="T")
    vs = variants(spec)
    features = {v.feature for v in vs}
    assert features == {"auth", "origin", "compression", "subprotocol"}
    auth_values = {v.value for v in vs if v.feature == "auth"}
    assert {"header", "query", "ticket", "none", "subprotocol:bearer."} <= auth_values
    assert "subprotocol:jwt." not in auth_values
    for v in vs:
        if v.feature == "compression":
            assert v.spec.compression is False and v.spec.subprotocols == spec.subprotocols


def test_live_matrix_finds_auth(agent_server: AgentServer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Against a server needing a token, a baseline without auth is fixed by the auth feature."""
    monkeypatch.setenv(CANARY_ENV, CANARY)
    spec = HandshakeSpec(url=agent_server.url("/auth"), token_env=CANARY_ENV,
                         messages=(MessageStep(DEFAULT_MESSAGE),),
                         retry=RetryPolicy(max_retries=0), run_timeout_s=5, close_timeout_s=1,
                         open_timeout_s=2)
    result = run_matrix(spec)
    assert result.baseline.label == "closed_before_first_event/1008"
    assert result.verdict.culprit == "auth"
    assert "auth=subprotocol:jwt." in result.verdict.fixes
    assert "auth=header" in result.verdict.fixes
    frame = result.frame()
    assert frame.loc[0, "feature"] == "baseline" and frame["flipped"].any()


def test_an_inconsistent_baseline_names_no_feature() -> None:
    """A flaky baseline (completes and fails on the same handshake) blames no feature."""
    base = VariantOutcome("baseline", "subprotocol:jwt.", "completed", 2, 3,
                          (("completed", 2), ("closed_before_first_event/1011", 1)))
    rows = [VariantOutcome("auth", "query", "closed_before_first_event/1011", 0, 3,
                           (("closed_before_first_event/1011", 3),))]
    verdict = matrix_verdict(base, rows)
    assert verdict.culprit is None and verdict.fixes == () and verdict.breaks == ()
    assert "not consistent" in verdict.explanation


def test_a_variant_whose_attempts_disagree_is_no_flip() -> None:
    """A variant that fails only sometimes does not count as breaking a steady baseline."""
    base = VariantOutcome("baseline", "subprotocol:jwt.", "completed", 3, 3, (("completed", 3),))
    rows = [VariantOutcome("compression", "off", "closed_mid_run/1011", 1, 3,
                           (("closed_mid_run/1011", 2), ("completed", 1))),
            VariantOutcome("auth", "none", "closed_before_first_event/1008", 0, 3,
                           (("closed_before_first_event/1008", 3),))]
    verdict = matrix_verdict(base, rows)
    assert verdict.breaks == ("auth=none",) and verdict.culprit == "auth"
