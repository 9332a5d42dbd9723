"""The labs as ``.ipynb`` files, for Google Colab and other tools that do not read jupytext's
percent-format ``.py`` notebooks (``course labs build --ipynb DIR``)."""

from __future__ import annotations

import json
from pathlib import Path

from course.grading.labs import LAB_FILES

_COLAB_INSTALL = '''\
# On Google Colab, install the course package first (this cell does nothing elsewhere).
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", {command})'''


def write_ipynb(
    labs_dir: str | Path, out_dir: str | Path, colab_install: str | None = None
) -> list[Path]:
    """Write ``out_dir/NN_topic.ipynb`` for every ``labs_dir/NN_topic.py``.

    Args:
        labs_dir: folder of percent-format labs (``labs``).
        out_dir: folder for the notebooks; created if needed.
        colab_install: a pip requirement for the course package (e.g.
            ``git+https://github.com/ORG/course.git``); when given, each notebook starts with a
            cell that installs it when the notebook runs on Colab.

    Returns:
        The paths written, in lab order.
    """
    import jupytext
    import nbformat

    labs_dir, out_dir = Path(labs_dir), Path(out_dir)
    sources = sorted(labs_dir.glob(LAB_FILES))
    if not sources:
        raise FileNotFoundError(f"No labs ({LAB_FILES}) in {labs_dir}/; run `course labs build`.")
    if colab_install is not None and not colab_install.strip():
        raise ValueError("--colab-install needs a pip requirement, e.g. git+https://...")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        notebook = jupytext.read(source, fmt="py:percent")
        notebook.metadata.pop("jupytext", None)
        notebook.metadata["kernelspec"] = {
            "name": "python3", "display_name": "Python 3", "language": "python"}
        if colab_install:
            command = json.dumps(f"install --quiet {colab_install}")
            notebook.cells.insert(
                0, nbformat.v4.new_code_cell(_COLAB_INSTALL.format(command=command)))
        nbformat.validate(notebook)
        path = out_dir / f"{source.stem}.ipynb"
        temporary = path.with_name(f".{path.name}.tmp")
        nbformat.write(notebook, temporary)
        temporary.replace(path)
        written.append(path)
    return written
