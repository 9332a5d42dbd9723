"""Opening a lab: a Jupyter server started from the installed `[lab]` extra serves the jupytext
`.py` labs as notebooks, and `course labs build --ipynb` writes valid notebooks for Colab."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from course import cli

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "course-test-token"
START_TIMEOUT = 90  # seconds for the server to answer; it is killed at the end in any case


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str):
    request = urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@pytest.fixture
def jupyter_server(tmp_path):
    """The base URL of a Jupyter server on 127.0.0.1 serving the repository."""
    port = free_port()
    environment = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
                   "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--allow-root",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={ROOT}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter server exited: {server.stderr.read().decode()[-2000:]}")
            try:
                get_json(f"{url}/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter server did not answer within {START_TIMEOUT} s")
                time.sleep(0.5)
        yield url
    finally:
        server.kill()
        server.wait(timeout=30)
        server.stderr.close()


def test_jupyter_opens_a_py_lab_as_a_notebook(jupyter_server):
    model = get_json(f"{jupyter_server}/api/contents/labs/02_vae_mnist.py")
    assert model["type"] == "notebook"
    cells = model["content"]["cells"]
    sources = ["".join(cell["source"]) for cell in cells]
    assert any(cell["cell_type"] == "markdown" for cell in cells)
    assert any('check("2.1")' in source for source in sources)


def test_labs_build_writes_ipynb_copies_with_a_colab_install_cell(tmp_path):
    requirement = "git+https://example.org/course.git"
    status = cli.main(["labs", "build", "--labs", str(tmp_path / "labs"),
                       "--ipynb", str(tmp_path / "ipynb"), "--colab-install", requirement])
    assert status == 0
    labs = sorted((tmp_path / "labs").glob("*.py"))
    notebooks = sorted((tmp_path / "ipynb").glob("*.ipynb"))
    assert [path.stem for path in notebooks] == [path.stem for path in labs]
    assert len(notebooks) == len(sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py")))
    notebook = nbformat.read(tmp_path / "ipynb" / "02_vae_mnist.ipynb", as_version=4)
    nbformat.validate(notebook)
    first = notebook.cells[0]
    assert first.cell_type == "code"
    assert '"google.colab" in sys.modules' in first.source and requirement in first.source
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert any('check("2.1")' in cell.source for cell in notebook.cells)


def test_ipynb_without_colab_install_has_no_install_cell(tmp_path):
    assert cli.main(["labs", "build", "--labs", str(tmp_path / "labs"),
                     "--ipynb", str(tmp_path / "ipynb")]) == 0
    notebook = nbformat.read(tmp_path / "ipynb" / "02_vae_mnist.ipynb", as_version=4)
    assert not any("google.colab" in cell.source for cell in notebook.cells)


def test_colab_install_without_ipynb_is_refused(tmp_path, capsys):
    status = cli.main(["labs", "build", "--labs", str(tmp_path / "labs"),
                       "--colab-install", "course"])
    assert status == 2
    assert "--colab-install needs --ipynb" in capsys.readouterr().err
    assert not (tmp_path / "labs").exists()
