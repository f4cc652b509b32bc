"""Strict params validation: each bad params file exits 2 with a message naming file, key and
expectation, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from uvs_analysis.cli import main
from uvs_analysis.errors import BadInputError, UsageError
from uvs_analysis.report.params import (
    find_secret,
    load_params_file,
    notebook_parameters,
    secret_env_names,
    validate_params,
)

NB = Path(__file__).parent / "data" / "report_test.ipynb"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjF9.c2lnbmF0dXJlLXZhbHVlLTEyMw"


def _report(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    params = tmp_path / "bad.yaml"
    params.write_text(text)
    code = main(["report", "-f", str(params), "--out", str(tmp_path / "out"),
                 "--notebook", str(NB)])
    return code, capsys.readouterr().err


BAD_CASES = [
    ("unknown key", "incident_id: x\natempts: 3\n",
     ["key 'atempts'", "line 2", "not a parameter", "Expected one of", "attempts"]),
    ("wrong type", "incident_id: x\nattempts: five\n",
     ["key 'attempts'", "str value 'five'", "Expected an integer"]),
    ("bool is not an int", "incident_id: x\nattempts: true\n",
     ["key 'attempts'", "bool value True", "Expected an integer"]),
    ("list expected", "incident_id: x\nlabels: a\n", ["key 'labels'", "Expected a list"]),
    ("null for an optional", "incident_id: x\nattempts:\n",
     ["key 'attempts'", "empty (null)", "Expected an integer (default 4)"]),
    ("missing required", "attempts: 3\n",
     ["required key 'incident_id' is missing", "Expected 'incident_id:' set to a string"]),
    ("JWT literal", f"incident_id: x\nlabels: [{JWT}]\n",
     ["key 'labels'", "looks like a secret (a JWT at labels[0])", "Expected no credentials"]),
    ("Bearer value", "incident_id: x\ncache_dir: 'Bearer abcdef0123456789'\n",
     ["key 'cache_dir'", "Bearer/Basic credential", "environment variable"]),
    ("token in a URL", "incident_id: x\ninvestigation: {url: 'wss://h/ws?token=abc123'}\n",
     ["key 'investigation'", "credential in the URL query ('token=')"]),
    ("password in a URL", "incident_id: x\nlabels: ['https://u:hunter2@h/x']\n",
     ["key 'labels'", "a password in a URL"]),
    ("high-entropy value under a token key",
     "incident_id: x\ntoken_env: aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY2z\n",
     ["key 'token_env'", "long high-entropy string"]),
    ("not an env var name", "incident_id: x\ntoken_env: 'my token'\n",
     ["key 'token_env'", "not an environment variable name", "UVS_DEMO_TOKEN"]),
    ("file does not exist", "incident_id: x\nlog_file: nothere.json\n",
     ["key 'log_file'", "nothere.json does not exist", "Expected an existing file"]),
    ("injected parameter", "incident_id: x\noutput_dir: /tmp/x\n",
     ["key 'output_dir'", "set by the report runner"]),
    ("not a mapping", "- a\n- b\n", ["bad.yaml holds a YAML list, not a mapping"]),
    ("invalid YAML", "incident_id: [x\nmode: ok\n", ["bad.yaml line", "is not valid YAML"]),
    ("incident id cannot name a directory", "incident_id: ../evil\n",
     ["key 'incident_id'", "cannot name a directory", "Expected 1-100 letters"]),
]


@pytest.mark.parametrize(("case", "text", "needles"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_params_exit_2_with_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, text: str,
    needles: list[str],
) -> None:
    """Each bad params file exits 2; the message names the file, the key and the expectation."""
    code, err = _report(tmp_path, text, capsys)
    assert code == 2, (case, err)
    assert "bad.yaml" in err
    for needle in needles:
        assert needle in err, (case, needle, err)
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists(), "nothing may run or be written on bad params"


def test_missing_params_file_names_it(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """A params file that does not exist exits 2 and names the path."""
    code = main(["report", "-f", str(tmp_path / "nope.yaml"), "--notebook", str(NB),
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert "nope.yaml does not exist" in capsys.readouterr().err


def test_missing_notebook_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A report notebook that does not exist exits 2 with a hint to pass --notebook."""
    params = tmp_path / "p.yaml"
    params.write_text("incident_id: x\n")
    code = main(["report", "-f", str(params), "--notebook", str(tmp_path / "none.ipynb")])
    err = capsys.readouterr().err
    assert code == 2
    assert "none.ipynb does not exist" in err and "--notebook" in err


def test_notebook_parameters_types_and_required() -> None:
    """The test notebook's parameters are read with their types; None defaults are required."""
    declared = notebook_parameters(NB)
    assert declared["incident_id"].required and declared["incident_id"].type_name == "str"
    assert declared["attempts"].type_name == "int" and not declared["attempts"].required
    assert declared["sleep_s"].type_name == "float"
    assert declared["enabled"].type_name == "bool"
    assert declared["labels"].type_name == "list"
    assert declared["investigation"].type_name == "dict"
    assert "set by the runner" in declared["output_dir"].help


def test_valid_params_resolve_paths_and_accept_int_for_float(tmp_path: Path) -> None:
    """Valid values pass; an int is a float; relative *_file and *_dir values are resolved
    against the params file's directory."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "export.json").write_text("[]")
    params_file = tmp_path / "p.yaml"
    params_file.write_text("x")
    declared = notebook_parameters(NB)
    values = validate_params(
        {"incident_id": "inc-1", "sleep_s": 2, "log_file": "sub/export.json",
         "cache_dir": "cache", "token_env": "UVS_DEMO_TOKEN", "labels": ["a"],
         "investigation": {"logs": {"top_signatures": []}}},
        declared, source=params_file)
    assert values["sleep_s"] == 2
    assert values["log_file"] == str(tmp_path / "sub" / "export.json")
    assert values["cache_dir"] == str(tmp_path / "cache")
    assert values["token_env"] == "UVS_DEMO_TOKEN"
    assert secret_env_names(values) == ["UVS_DEMO_TOKEN"]


def test_load_params_file_empty_is_empty_mapping(tmp_path: Path) -> None:
    """An empty params file is an empty mapping (then 'incident_id' is reported missing)."""
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    assert load_params_file(path) == {}
    with pytest.raises(UsageError, match="required key 'incident_id'"):
        validate_params({}, notebook_parameters(NB), source=path)


def test_load_params_file_non_string_key(tmp_path: Path) -> None:
    """A mapping with a non-string key is refused and the key is named."""
    path = tmp_path / "k.yaml"
    path.write_text("1: a\n")
    with pytest.raises(BadInputError, match="key 1 is not a name"):
        load_params_file(path)


@pytest.mark.parametrize(("key", "value"), [
    ("token_env", "UVS_DEMO_TOKEN"),
    ("api_key_env", "GOOGLE_APPLICATION_CREDENTIALS"),
    ("ws_url", "wss://svc-abc123-uc.a.run.app/ws?user=alice"),
    ("cache_dir", "../outputs/cache"),
    ("source", "cloudlogging://my-project-123456"),
    ("statement", "the database was down for 5 minutes"),
    ("secret_name", "projects/p/secrets/ws-token/versions/latest"),
    ("auth_header", "Bearer {token}"),
    ("ws_url", "wss://svc.example.com/ws?token={token}"),
    ("subprotocol", "jwt.{token_b64url}"),
])
def test_find_secret_lets_ordinary_values_through(key: str, value: str) -> None:
    """Names of variables, paths, URLs without credentials and prose are not secrets."""
    assert find_secret(key, value) is None


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("anything", JWT, "JWT"),
    ("header", "Authorization: Bearer abc.def-ghi_123", "Bearer"),
    ("auth_header", "Bearer {token}abc.def-ghi_123", "Bearer"),
    ("ws_url", "wss://svc.example.com/ws?token=abcdef123456", "credential in the URL"),
    ("password", "Tr0ub4dor&3-correct-horse-battery", "high-entropy"),
    ("api_key", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "high-entropy"),
    ("nested", {"auth": {"token": "0123456789abcdef0123456789abcdef01234567"}}, "high-entropy"),
])
def test_find_secret_catches_credentials(key: str, value: object, reason: str) -> None:
    """JWTs, Bearer values and long high-entropy strings under secret-ish keys are caught."""
    found = find_secret(key, value)
    assert found is not None and reason in found
