"""The labs as ``.ipynb`` files, for Google Colab and other tools that do not read jupytext's
percent-format ``.py`` notebooks (``course labs build --ipynb DIR``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from course.grading.labs import LAB_FILES, EditedLabsError, backup_labs

_COLAB_INSTALL = '''\
# On Google Colab, install the course package first (this cell does nothing elsewhere).
import sys

if "google.colab" in sys.modules:
    get_ipython().run_line_magic("pip", {command})'''


def write_ipynb(
    labs_dir: str | Path,
    out_dir: str | Path,
    colab_install: str | None = None,
    force: bool = False,
) -> list[Path]:
    """Write ``out_dir/NN_topic.ipynb`` for every ``labs_dir/NN_topic.py``.

    Each notebook records a fingerprint of its cells' sources in its metadata; a notebook whose
    cells were edited since (see ``edited_notebooks``) is never replaced unless ``force`` is set,
    and one whose cells are already those of its lab is left as it is (outputs included).

    Args:
        labs_dir: folder of percent-format labs (``labs``).
        out_dir: folder for the notebooks; created if needed.
        colab_install: a pip requirement for the course package (e.g.
            ``git+https://github.com/ORG/course.git``); when given, each notebook starts with a
            cell that installs it when the notebook runs on Colab.
        force: replace notebooks edited since they were written.

    Returns:
        The paths written, in lab order.

    Raises:
        EditedLabsError: a notebook to replace was edited and ``force`` is not set.
    """
    import jupytext
    import nbformat

    labs_dir, out_dir = Path(labs_dir), Path(out_dir)
    sources = sorted(labs_dir.glob(LAB_FILES))
    if not sources:
        raise FileNotFoundError(f"No labs ({LAB_FILES}) in {labs_dir}/; run `course labs build`.")
    if colab_install is not None and not colab_install.strip():
        raise ValueError("--colab-install needs a pip requirement, e.g. git+https://...")
    if not force:
        keep_edited_notebooks(labs_dir, out_dir)
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
        notebook.metadata["course"] = {"fingerprint": _fingerprint(notebook)}
        path = out_dir / f"{source.stem}.ipynb"
        if path.exists() and _current(path) == notebook.metadata["course"]["fingerprint"]:
            continue  # the same cells: keep the file, outputs included
        temporary = path.with_name(f".{path.name}.tmp")
        nbformat.write(notebook, temporary)
        temporary.replace(path)
        written.append(path)
    return written


def edited_notebooks(labs_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """The notebooks in ``out_dir`` written for the labs whose cells were edited since."""
    paths = [Path(out_dir) / f"{lab.stem}.ipynb" for lab in sorted(Path(labs_dir).glob(LAB_FILES))]
    return [path for path in paths if path.exists() and _recorded(path) != _current(path)]


def keep_edited_notebooks(
    labs_dir: str | Path, out_dir: str | Path, backup: bool = False, force: bool = False
) -> Path | None:
    """Make sure writing the notebooks loses no edits: copy the edited ones into
    ``out_dir/backup-<time>/`` (``backup``), let them go (``force``) or refuse.

    Returns:
        The backup folder, or None when nothing was copied.

    Raises:
        EditedLabsError: a notebook was edited and neither ``backup`` nor ``force`` is set.
    """
    edited = edited_notebooks(labs_dir, out_dir)
    if edited and backup:
        return backup_labs(edited, out_dir)
    if edited and not force:
        raise EditedLabsError(edited, options=f" --ipynb {out_dir}")
    return None


def _fingerprint(notebook) -> str:
    """A hash of the notebook's cell types and sources (outputs and metadata left out)."""
    cells = [[cell.cell_type, cell.source] for cell in notebook.cells]
    return hashlib.sha256(json.dumps(cells).encode("utf-8")).hexdigest()[:16]


def _recorded(path: Path) -> str | None:
    """The fingerprint a notebook file records, or None (unreadable or not written by us)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))["metadata"]["course"]["fingerprint"]
    except (ValueError, KeyError, TypeError):
        return None


def _current(path: Path) -> str | None:
    """The fingerprint of a notebook file's cells as they are now (None: unreadable)."""
    import nbformat

    try:
        return _fingerprint(nbformat.read(path, as_version=4))
    except Exception:  # noqa: BLE001 -- any unreadable notebook counts as edited
        return None
