"""No TensorFlow or CUDA log line reaches a lab cell's output.

TensorFlow's C++ libraries write start-up lines ("oneDNN custom operations are on", "Could not
find cuda drivers", "failed call to cuInit") to file descriptor 2, which a Jupyter kernel
forwards to the running cell: a lab's import cell (``import keras`` comes before ``course``'s
imports) and the first cell that touches a device. Every lab therefore starts with a cell that
imports TensorFlow quietly (``course.import_tensorflow_quietly``).
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import pytest

from course.grading.labs import make_lab

ROOT = Path(__file__).resolve().parents[1]
NOISE = re.compile(
    r"cuInit|cuda|oneDNN|absl|cpu_feature_guard|rebuild TensorFlow|TF-TRT|^[IWEF]0000 ",
    re.IGNORECASE | re.MULTILINE,
)


def output_texts(notebook) -> list[tuple[int, str]]:
    """(cell index, text) of every output of every cell: streams, results, errors."""
    texts = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            text = output.get("text") or "\n".join(output.get("traceback", []))
            texts.append((index, text + str(data.get("text/plain", ""))))
    return texts


def test_every_lab_starts_tensorflow_quietly_before_anything_imports_it():
    for path in sorted((ROOT / "labs").glob("[0-9][0-9]_*.py")):
        code = [cell.source for cell in jupytext.read(path).cells if cell.cell_type == "code"]
        assert "import_tensorflow_quietly()" in code[0], path.name
        assert not re.search(r"^\s*(import|from)\s+(keras|tensorflow)", code[0], re.MULTILINE)


@pytest.mark.slow
def test_no_tensorflow_line_in_any_cell_of_a_completed_lab(tmp_path, monkeypatch):
    """Lab 1 as a student who did every exercise has it: the lab's first cells, then the
    solution's; executed in a fresh kernel whose TensorFlow log level nobody set."""
    import nbclient

    solution = (ROOT / "solutions" / "01_keras_basics.py").read_text()
    lab = make_lab(solution, "solutions/01_keras_basics.py")[0]
    notebook = jupytext.reads(lab[: lab.index("# %% [markdown]\n# # Lab 1")] + solution,
                              fmt="py:percent")
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv("COURSE_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    texts = output_texts(notebook)
    assert any("Lab 1: 9/9 points" in text for _, text in texts)  # it ran to the end
    noisy = [(index, text[:200]) for index, text in texts if NOISE.search(text)]
    assert noisy == []


def test_course_run_prints_a_few_headline_metrics_and_where_the_rest_is(tmp_path):
    from course.demos import summary

    (tmp_path / "protocol.png").write_bytes(b"")
    record = {
        "demo": "landmark-pbmc", "epochs": 3, "timing": {"total_s": 39.2},
        "data": {"name": "PBMC", "source": "bundled"},
        "metrics": {
            "n_splits": 5,
            "LandmarkGAN": {"pearson_r": [0.41, 0.02], "rmse": [0.3, 0.01]},
            "ridge": {"pearson_r": [0.45, 0.01], "rmse": [0.2, 0.01]},
            "per-gene mean": {"pearson_r": [None, 0.0]},
        },
    }
    lines = summary(record, tmp_path).splitlines()
    assert lines[0] == "landmark-pbmc: PBMC (bundled), 3 epochs, 39 s"
    assert [line.split()[0] for line in lines[1:5]] == [
        "n_splits", "LandmarkGAN.pearson_r", "ridge.pearson_r", "per-gene"]
    assert "0.41 +- 0.02" in lines[2] and lines[4].endswith("undefined")
    assert lines[5:] == [f"All metrics: {tmp_path / 'metrics.json'}",
                         f"Figures in {tmp_path}/: protocol.png"]
