"""Strict validation of a report's params file against the notebook's ``parameters`` cell.

papermill only warns about unknown parameters and never checks types; a report run must refuse
a bad params file before anything starts. Conventions (documented in the README):

- A parameter whose default is ``None`` is required, and ``incident_id`` always is (its
  notebook default only lets the notebook run standalone, e.g. under nbval).
- ``output_dir``, ``run_id`` and ``started`` are injected by the runner; a params file must not
  set them.
- Types come from the annotation (``str``, ``int``, ``float`` (an int is accepted), ``bool``,
  ``list``, ``dict``), else from the default's literal type.
- Path-valued parameters: a relative value of a parameter named ``*_file``, ``*_path`` or
  ``*_dir`` is resolved against the directory of the params file (so a run does not depend on
  the current directory, e.g. under cron); a non-empty ``*_file`` must name an existing file,
  a non-empty ``*_dir`` an existing directory (except the output dirs ``cache_dir`` and
  ``output_dir``), and a ``logs_source`` that is a path an existing export.
- ``*_env`` parameters hold the NAME of an environment variable (``UVS_DEMO_TOKEN``), never a
  value; tokens reach the notebook only through the environment.
- A value that looks like a secret is refused: a JWT, a ``Bearer``/``Basic`` credential, a
  credential in a URL (``?token=``, ``user:password@``), or a long high-entropy string under a
  key whose name contains token, secret, password, passwd, credential or key.
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import yaml

from uvs_analysis.errors import BadInputError, UsageError
from uvs_analysis.replay.redact import JWT_PATTERN, SECRET_QUERY_KEYS, looks_like_token

__all__ = [
    "INJECTED",
    "NotebookParam",
    "find_secret",
    "load_params_file",
    "notebook_parameters",
    "secret_env_names",
    "validate_params",
]

#: Parameters the runner injects; a params file must not set them.
INJECTED: Final = ("output_dir", "run_id", "started")
_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "str": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}
_TYPE_WORDS: Final = {
    "str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
    "list": "a list", "dict": "a mapping",
}
_SECRET_KEY_RE: Final = re.compile(r"(?i)token|secret|password|passwd|credential|key")
_ENV_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BEARER_RE: Final = re.compile(r"(?i)\b(?:bearer|basic)\s+\S{6,}")
#: ``*_dir`` parameters that name where outputs go (they need not exist yet).
_OUTPUT_DIRS: Final = frozenset({"cache_dir", "output_dir"})
#: Log-source parameters, and the words that are not paths.
_SOURCE_KEYS: Final = frozenset({"logs_source"})
_SOURCE_WORDS: Final = frozenset({"testbed", "sample"})
_PLACEHOLDER_RE: Final = re.compile(
    r"\{(?:token|token_b64url|ticket|thread_id|user_id|user|attempt)\}")
_PATH_SUFFIXES: Final = ("_file", "_path", "_dir")


@dataclass(frozen=True)
class NotebookParam:
    """One parameter declared in the notebook's ``parameters`` cell.

    Attributes:
        name: the variable name.
        type_name: ``str``, ``int``, ``float``, ``bool``, ``list``, ``dict`` or ``any``.
        default: the default's source text (``None`` for a required parameter).
        required: the default is ``None``.
        help: the trailing comment.
    """

    name: str
    type_name: str
    default: str
    required: bool
    help: str = ""


def notebook_parameters(notebook: Path | str) -> dict[str, NotebookParam]:
    """The parameters declared in ``notebook`` (papermill's inference), by name.

    Raises:
        UsageError: the notebook is missing, unreadable or has no ``parameters`` cell.
    """
    import papermill as pm  # deferred: importing papermill costs ~0.5 s

    path = Path(notebook)
    if not path.is_file():
        raise UsageError(f"report notebook {path} does not exist",
                         expected="an .ipynb file",
                         hint="pass --notebook PATH, or run from a checkout that has notebooks/")
    try:
        inferred = pm.inspect_notebook(str(path))
    except Exception as exc:  # papermill raises bare exceptions for unreadable JSON
        raise UsageError(f"report notebook {path} could not be read: {exc}",
                         expected="a Jupyter notebook (nbformat 4)") from None
    if not inferred:
        raise UsageError(f"report notebook {path} declares no parameters",
                         expected="a cell tagged 'parameters' with lines such as "
                                  "'incident_id: str = None  # help'")
    return {name: _param(info) for name, info in inferred.items()}


def _param(info: Mapping[str, Any]) -> NotebookParam:
    default = str(info.get("default", ""))
    annotation = str(info.get("inferred_type_name") or "None").strip()
    base = annotation.split("[", 1)[0].strip().lower()
    if base in _TYPES:
        type_name = base
    else:
        type_name = _literal_type(default)
    return NotebookParam(name=str(info["name"]), type_name=type_name, default=default,
                         required=default.strip() == "None" or info["name"] == "incident_id",
                         help=str(info.get("help") or ""))


def _literal_type(default: str) -> str:
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError):
        return "any"
    for name in ("bool", "int", "float", "str", "list", "dict"):
        if type(value) is _TYPES[name][0]:
            return name
    return "any"


def _key_lines(text: str) -> dict[str, int]:
    """1-based line of each top-level key in a YAML mapping (best effort)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): k.start_mark.line + 1 for k, _ in node.value}


def load_params_file(path: Path | str) -> dict[str, Any]:
    """Read a params YAML file: a mapping of parameter names to values.

    Raises:
        BadInputError: the file is missing, is not valid YAML, or is not a mapping with
            string keys; the message names the file (and line where YAML says).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"params file {path} does not exist",
                            expected="a YAML file of parameter names and values",
                            hint="pass -f params/NAME.yaml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"params file {path} could not be read: {exc}",
                            expected="a readable UTF-8 YAML file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BadInputError(f"params file {path}{where} is not valid YAML: {problem}",
                            expected="'name: value' lines (YAML)") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInputError(f"params file {path} holds a YAML {type(data).__name__}, "
                            "not a mapping",
                            expected="a mapping of parameter names to values, e.g. "
                                     "'incident_id: ws-1011'")
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise BadInputError(f"params file {path}: key {bad[0]!r} is not a name",
                            expected="parameter names (strings) as keys")
    return data


def validate_params(
    params: Mapping[str, Any],
    declared: Mapping[str, NotebookParam],
    *,
    source: Path | str = "params",
) -> dict[str, Any]:
    """Check ``params`` against the notebook's ``declared`` parameters.

    Args:
        params: the values from the params file.
        declared: the notebook's parameters (``notebook_parameters``).
        source: the params file (names it in messages; relative ``*_file``/``*_path``/``*_dir``
            values are resolved against its directory).

    Returns:
        The values to inject: ``params`` with relative path values made absolute.

    Raises:
        UsageError: an unknown, injected, mistyped, missing or secret-looking value, or a
            ``*_file`` that does not exist; the message names the file, key and expectation.
    """
    src = Path(source)
    lines = _key_lines(src.read_text(encoding="utf-8")) if src.is_file() else {}

    def where(key: str) -> str:
        line = lines.get(key)
        return f"params file {src}" + (f" line {line}" if line else "") + f", key '{key}'"

    for key in params:
        if key in INJECTED:
            raise UsageError(f"{where(key)} is set by the report runner",
                             expected=f"no '{key}' in the params file",
                             hint=f"remove '{key}'; the runner sets {', '.join(INJECTED)}")
        if key not in declared:
            known = ", ".join(sorted(k for k in declared if k not in INJECTED))
            raise UsageError(f"{where(key)} is not a parameter of the report notebook",
                             expected=f"one of: {known}",
                             hint="check the spelling; 'papermill --help-notebook' lists them")
    for name, param in declared.items():
        if name in INJECTED:
            continue
        if param.required and params.get(name) is None:
            kind = _TYPE_WORDS.get(param.type_name, "a value")
            raise UsageError(f"params file {src}: required key '{name}' is missing",
                             expected=f"'{name}:' set to {kind}"
                                      + (f" ({param.help})" if param.help else ""))
    resolved: dict[str, Any] = {}
    for key, value in params.items():
        param = declared[key]
        _check_type(key, value, param, where(key))
        secret = find_secret(key, value)
        if secret is not None:
            raise UsageError(f"{where(key)} looks like a secret ({secret})",
                             expected="no credentials in params: put the token in an environment "
                                      "variable and name that variable in a '*_env' parameter",
                             hint="papermill records every parameter in the output notebook")
        resolved[key] = _resolve_path(key, value, src, where(key))
        if key in _SOURCE_KEYS:
            resolved[key] = _check_source(key, value, src, where(key))
    return resolved


def _check_type(key: str, value: Any, param: NotebookParam, where: str) -> None:
    if value is None:
        if param.type_name == "any":
            return
        raise UsageError(f"{where} is empty (null)",
                         expected=f"{_TYPE_WORDS[param.type_name]} (default {param.default})",
                         hint="remove the key to keep the default")
    if param.type_name == "any":
        return
    allowed = _TYPES[param.type_name]
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if isinstance(value, float) and not math.isfinite(value) and param.type_name != "float":
        ok = False
    if not ok:
        raise UsageError(f"{where} has {type(value).__name__} value {_short(value)}",
                         expected=f"{_TYPE_WORDS[param.type_name]} (the notebook declares "
                                  f"'{param.name}: {param.type_name}')")
    if key.endswith("_env") and isinstance(value, str) and value \
            and not _ENV_NAME_RE.fullmatch(value):
        raise UsageError(f"{where} is not an environment variable name",
                         expected="a NAME such as UVS_DEMO_TOKEN (the variable holds the token)")


def _resolve_path(key: str, value: Any, src: Path, where: str) -> Any:
    if not (isinstance(value, str) and value and key.endswith(_PATH_SUFFIXES)):
        return value
    if "://" in value:
        return value
    path = _against(value, src)
    if key.endswith("_file") and not path.is_file():
        raise UsageError(f"{where}: file {path} does not exist",
                         expected="an existing file (relative paths are resolved against the "
                                  "params file's directory)")
    if key.endswith("_dir") and key not in _OUTPUT_DIRS and not path.is_dir():
        raise UsageError(f"{where}: directory {path} does not exist",
                         expected="an existing directory (relative paths are resolved against "
                                  "the params file's directory)")
    return str(path)


def _against(value: str, src: Path) -> Path:
    """``value`` as a path, a relative one taken against the params file's directory."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (src.parent / path).resolve()


def _check_source(key: str, value: Any, src: Path, where: str) -> Any:
    """A log source that is a path must exist (resolved like the other paths)."""
    if not (isinstance(value, str) and value) or value in _SOURCE_WORDS or "://" in value:
        return value
    path = _against(value, src)
    if not path.exists():
        raise UsageError(f"{where}: log export {path} does not exist",
                         expected="an existing export file, 'testbed', 'sample', '' or "
                                  "cloudlogging://PROJECT")
    return str(path)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _strings(key: str, value: Any) -> Iterator[tuple[str, str]]:
    """Every (key path, string) inside ``value``, including mapping keys."""
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(f"{key}.{k}", str(k))
            yield from _strings(f"{key}.{k}", v)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _strings(f"{key}[{i}]", v)


def find_secret(key: str, value: Any) -> str | None:
    """Why ``value`` (under ``key``) looks like a credential, or None.

    Environment variable names (``UVS_DEMO_TOKEN``) under ``*_env`` keys are not secrets.
    """
    for path, raw in _strings(key, value):
        # Templates such as "Bearer {token}" or "?token={token}" name where the token goes;
        # the placeholders are not credentials (the token itself comes from the environment).
        text = _PLACEHOLDER_RE.sub("", raw)
        leaf = re.split(r"[.\[]", path)[-1] if "." in path or "[" in path else path
        if JWT_PATTERN.search(text):
            return f"a JWT at {path}"
        if _BEARER_RE.search(text):
            return f"a Bearer/Basic credential at {path}"
        if "://" in text:
            reason = _url_secret(text)
            if reason:
                return f"{reason} at {path}"
        if _SECRET_KEY_RE.search(leaf) or _SECRET_KEY_RE.search(key):
            if _ENV_NAME_RE.fullmatch(text) and text.upper() == text and len(text) <= 64 \
                    and ("_" in text or len(text) < 20):
                continue
            if looks_like_token(text) or _high_entropy(text):
                return f"a long high-entropy string at {path}"
    return None


def _url_secret(text: str) -> str | None:
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        return None
    if parts.password:
        return "a password in a URL"
    for name, val in parse_qsl(parts.query, keep_blank_values=True):
        if name.lower() in SECRET_QUERY_KEYS and val:
            return f"a credential in the URL query ('{name}=')"
    return None


def _high_entropy(text: str) -> bool:
    """A ``/``-separated piece of 20+ characters, without spaces, with a digit and 3.5+ bits of
    entropy per character (resource paths such as ``projects/p/secrets/name`` are not)."""
    for piece in text.split("/"):
        if len(piece) < 20 or any(c.isspace() for c in piece) or \
                not any(c.isdigit() for c in piece):
            continue
        counts = Counter(piece)
        bits = -sum(n / len(piece) * math.log2(n / len(piece)) for n in counts.values())
        if bits >= 3.5:
            return True
    return False


def secret_env_names(params: Mapping[str, Any]) -> list[str]:
    """The environment variable names given in ``*_env`` parameters (their values are masked
    in every output of the run)."""
    return sorted({v for k, v in params.items()
                   if k.endswith("_env") and isinstance(v, str) and v})
