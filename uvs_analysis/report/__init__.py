"""Reports: one papermill run of the report notebook per params file, into its own directory.

``run_report`` validates the params (``params``), executes the notebook (``runner``, ``worker``),
renders offline HTML (``render``), compares with the previous run (``compare``) and keeps
``DIR/index.html`` (``index``) up to date.
"""

from __future__ import annotations

from uvs_analysis.report.compare import compare_previous, key_figures
from uvs_analysis.report.params import load_params_file, notebook_parameters, validate_params
from uvs_analysis.report.runner import RunOutcome, default_notebook, run_report

__all__ = [
    "RunOutcome",
    "compare_previous",
    "default_notebook",
    "key_figures",
    "load_params_file",
    "notebook_parameters",
    "run_report",
    "validate_params",
]
