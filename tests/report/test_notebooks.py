"""results/notebooks/*.ipynb execute headless on real runs and draw their figures.

The kernel is this interpreter's: a kernelspec named ``pianoeval-test`` whose argv is
``sys.executable -m ipykernel_launcher`` is installed into a temporary prefix, and that
prefix goes first on JUPYTER_PATH, so a ``python3`` kernel from elsewhere on the machine
can never be picked up instead. The ``parameters`` cell is replaced the way papermill
would, and the executed copy is kept in the test's tmp folder only.
"""

import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from pianoeval.paths import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "results" / "notebooks"


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory, monkeypatch_module):
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("kernel")
    install(kernel_name="pianoeval-test", prefix=str(prefix))
    monkeypatch_module.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    return "pianoeval-test"


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _execute(name: str, parameters: str, kernel_name: str, workdir: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = parameters
    notebook.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    NotebookClient(notebook, kernel_name=kernel_name, timeout=240,
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return notebook


def _outputs(notebook) -> tuple[int, str]:
    """(number of PNG figures shown, all printed text)."""
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    pngs = sum("image/png" in o.get("data", {}) for o in outputs)
    return pngs, "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")


@pytest.mark.parametrize("name", ["sweep_report", "ablation_report"])
def test_notebooks_are_committed_without_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert [c.source.split("=")[0].strip() for c in code if "parameters" in c.metadata.get("tags", [])] == ["run_dir"]


def test_sweep_notebook_draws_the_four_figures(sweep_run_dir, kernel_name, tmp_path):
    before = sorted(p.name for p in NOTEBOOKS.iterdir())
    notebook = _execute("sweep_report", f"run_dir = {str(sweep_run_dir)!r}", kernel_name, tmp_path)
    pngs, printed = _outputs(notebook)
    assert pngs == 4
    assert printed.strip().splitlines()[-1] == sys.executable  # the venv's kernel ran it
    assert sorted(p.name for p in NOTEBOOKS.iterdir()) == before and list(tmp_path.iterdir()) == []


def test_ablation_notebook_shows_a_staged_run_stage_by_stage(staged_run_dir, kernel_name, tmp_path):
    notebook = _execute("ablation_report", f"run_dir = {str(staged_run_dir)!r}\nstage = 'round1'", kernel_name,
                        tmp_path)
    pngs, printed = _outputs(notebook)
    assert pngs == 5  # stage decisions + headline, learning curves, heat map, metric vs cost of round1
    assert printed.strip().splitlines()[-1] == sys.executable
    tables = "".join(o.get("data", {}).get("text/html", "") for c in notebook.cells if c.cell_type == "code"
                     for o in c.outputs)
    assert "bilstm_baseline" in tables and "note_sa" in tables and list(tmp_path.iterdir()) == []
