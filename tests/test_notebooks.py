"""Notebooks: committed clean, parameters introspectable, params files valid, papermill runs."""

from __future__ import annotations

import json
from pathlib import Path

import papermill as pm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL = "uvs-analysis"

#: params file -> the notebook it drives (files that need a cloud account are not run here;
#: demo.yaml drives the report notebook, run end to end through the report runner's tests).
PARAMS_FOR = {
    "demo_logs.yaml": "01_cloud_run_logs.ipynb",
    "demo_replay.yaml": "02_websocket_replay.ipynb",
    "demo.yaml": "report.ipynb",
}
#: what the verdict cell of each notebook prints on its demo (checked by nbval too).
VERDICT_FOR = {
    "01_cloud_run_logs.ipynb": "top error signature: Database unavailable",
    "02_websocket_replay.ipynb": "dominant failure: closed_before_first_event/1011",
    "report.ipynb": "root cause: dependency-down (database)",
}


def _parameters_cell(nb: dict) -> dict:
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    return cells[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs_and_with_the_project_kernel(path: Path) -> None:
    """Only the verdict cell keeps its expected output (nbval checks it); the last cell is that
    verdict; the kernelspec is the project's."""
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for cell in code:
        checked = "NBVAL_CHECK_OUTPUT" in "".join(cell["source"])
        assert checked or (cell["outputs"] == [] and cell["execution_count"] is None)
    assert "NBVAL_CHECK_OUTPUT" in "".join(code[-1]["source"]), "ends with a verdict cell"
    assert code[-1]["outputs"], "the verdict cell stores the output nbval compares"
    assert nb["metadata"]["kernelspec"]["name"] == KERNEL


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_parameter_is_typed_commented_and_introspectable(path: Path) -> None:
    """papermill --help-notebook documents every parameter line (type, default and help)."""
    nb = json.loads(path.read_text())
    source = "".join(_parameters_cell(nb)["source"])
    lines = [ln for ln in source.splitlines() if ln.strip() and not ln.startswith("#")]
    inferred = pm.inspect_notebook(str(path))
    assert len(inferred) == len(lines)
    for name, info in inferred.items():
        assert info["inferred_type_name"] not in ("None", ""), name
        assert info["help"], f"{name} has no help comment"


#: params files that need a cloud account: checked against the report's parameters, not run.
CLOUD_PARAMS = {"staging_template.yaml": "report.ipynb"}


@pytest.mark.parametrize("params_name", sorted({**PARAMS_FOR, **CLOUD_PARAMS}))
def test_params_file_keys_are_parameters_of_its_notebook(params_name: str) -> None:
    """Every key of a params file is a parameter of the notebook it drives."""
    params = yaml.safe_load((ROOT / "params" / params_name).read_text())
    notebook = {**PARAMS_FOR, **CLOUD_PARAMS}[params_name]
    inferred = pm.inspect_notebook(str(ROOT / "notebooks" / notebook))
    assert sorted(set(params) - set(inferred)) == []


def test_every_params_file_is_known() -> None:
    """A new params file must say which notebook it drives (and is then checked)."""
    known = {**PARAMS_FOR, **CLOUD_PARAMS}.keys()
    assert {p.name for p in (ROOT / "params").glob("*.yaml")} == known


@pytest.mark.parametrize("params_name", ["demo.yaml", "staging_template.yaml"])
def test_report_params_pass_the_runner_validation(params_name: str) -> None:
    """The report's params files are valid for the runner as they stand (no secret, types)."""
    from uvs_analysis.report.params import load_params_file, notebook_parameters, validate_params

    path = ROOT / "params" / params_name
    declared = notebook_parameters(ROOT / "notebooks" / "report.ipynb")
    validated = validate_params(load_params_file(path), declared, source=path)
    assert validated["incident_id"]


@pytest.mark.parametrize("params_name", sorted(PARAMS_FOR))
def test_papermill_runs_the_notebook_with_its_params_file(params_name: str, tmp_path: Path) -> None:
    """papermill executes the notebook with the params file; no cell fails."""
    out = tmp_path / "out.ipynb"
    parameters = yaml.safe_load((ROOT / "params" / params_name).read_text())
    if PARAMS_FOR[params_name] == "report.ipynb":
        parameters["output_dir"] = str(tmp_path)
    pm.execute_notebook(
        str(ROOT / "notebooks" / PARAMS_FOR[params_name]),
        str(out),
        parameters=parameters,
        kernel_name=KERNEL,
        cwd=str(ROOT / "notebooks"),
        progress_bar=False,
    )
    nb = json.loads(out.read_text())
    assert nb["metadata"]["papermill"]["exception"] is None
    last = [c for c in nb["cells"] if c["cell_type"] == "code"][-1]
    printed = "".join("".join(o.get("text", "")) for o in last["outputs"])
    assert VERDICT_FOR[PARAMS_FOR[params_name]] in printed
