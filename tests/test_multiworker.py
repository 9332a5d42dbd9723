"""Two worker processes on loopback train with MultiWorkerMirroredStrategy and end where one
process without a strategy ends on the same global batches.

(Comparing the two workers with each other would prove nothing: the all-reduce makes them equal
even when the update is wrong.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

WORKER = Path(__file__).with_name("multiworker_worker.py")
TIME_LIMIT_S = 240


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def start(out_path: Path, mode: str, tf_config: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "COURSE_CPU_REPLICAS": "", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(out_path), mode],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_two_workers_on_loopback_train_like_one_process(tmp_path):
    workers = [f"localhost:{port}" for port in free_ports(2)]
    processes = [
        start(
            tmp_path / f"worker{index}.npz",
            "worker",
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}},
        )
        for index in range(2)
    ]
    processes.append(start(tmp_path / "single.npz", "single"))
    try:
        outputs = [process.communicate(timeout=TIME_LIMIT_S)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]

    single = np.load(tmp_path / "single.npz")
    assert len(single.files) > 1
    assert np.all(np.isfinite(single["arr_0"]))
    for index in range(2):
        worker = np.load(tmp_path / f"worker{index}.npz")
        assert worker.files == single.files
        for name in single.files:
            np.testing.assert_allclose(worker[name], single[name], rtol=1e-4, atol=1e-6)
