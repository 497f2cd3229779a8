"""What `enclavefl node serve` and `enclavefl job ...` import while they really run a job (issue 14).

Each command runs in a fresh interpreter in which torch, scikit-learn, matplotlib, scipy and dp-accounting
cannot be imported (a meta-path finder raises ModuleNotFoundError, as for a distribution that is not
installed), and reports at exit which top-level modules it loaded. The node serves a whole job, every round,
until the model owner downloads the final model: a blocked import anywhere on its path fails the test.
`node serve` loads what the enclave's aggregator loads plus the CLI; the model owner's commands never need
torch (the data owners train, not the model owner).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from blocked_imports import ENV, command
from node_harness import Workspace, in_threads, numpy_owner, workspace

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]
__all__ = ["workspace"]
HEAVY = ("torch", "sklearn", "matplotlib", "scipy", "dp_accounting")


def start(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.Popen[str], Path]:
    report = tmp_path / f"{name}-modules.json"
    process = subprocess.Popen(
        command(HEAVY, report, args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV
    )
    return process, report


def finish(process: subprocess.Popen[str], report: Path, timeout: float = 120) -> dict[str, object]:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out
    assert "ModuleNotFoundError" not in out and "Traceback" not in out, out
    written = json.loads(report.read_text())
    loaded: dict[str, object] = {
        "top_level": sorted({m.partition(".")[0] for m in written["modules"]}),
        "peak_kib": written["peak_kib"],
    }
    assert not set(HEAVY) & set(loaded["top_level"]), loaded  # type: ignore[arg-type]
    return loaded


def wait_for_file(path: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)
    return path.read_text().strip()


def model_owner_args(ws: Workspace, command: str, address: str) -> list[str]:
    key, cert = ws.keys["model-owner"]
    return [
        "job",
        command,
        "--node",
        address,
        "--job",
        str(ws.job_file),
        "--policy",
        str(ws.policy_file),
        "--key",
        str(key),
        "--cert",
        str(cert),
    ]


def test_the_blocker_blocks(tmp_path: Path) -> None:
    # the control: a command that needs torch fails under the blocker, so the tests below can fail
    process, _ = start(tmp_path, "demo", "demo", "--rounds", "1")
    out, _ = process.communicate(timeout=120)

    assert process.returncode != 0
    assert "No module named 'torch'" in out


def test_node_serve_runs_a_whole_job_without_the_heavy_distributions(
    workspace: Workspace, simulated_platform_dir: Path, tmp_path: Path
) -> None:
    port_file = tmp_path / "node.addr"
    node, report = start(
        tmp_path,
        "node",
        "node",
        "serve",
        "--job",
        str(workspace.job_file),
        "--tee",
        "insecure-simulation",
        "--platform-dir",
        str(simulated_platform_dir),
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--ephemeral",
        "--grace",
        "5",
        "--linger",
        "60",
    )
    try:
        address = wait_for_file(port_file)
        owners = list(in_threads(*(numpy_owner(workspace, address, n, v) for n, v in (("alice", 1), ("bob", 3)))))
        for command in ("submit", "watch", "download"):
            extra = ["--model", str(workspace.model_file)] if command == "submit" else []
            extra += ["--out", str(tmp_path / "final.safetensors")] if command == "download" else []
            finish(*start(tmp_path, command, *model_owner_args(workspace, command, address), *extra))
        for thread in owners:
            thread.join(30)

        loaded = finish(node, report)
    finally:
        if node.poll() is None:
            node.kill()
            node.communicate()

    assert (tmp_path / "final.safetensors").is_file()
    assert {"grpc", "numpy", "cryptography", "enclavefl"} <= set(loaded["top_level"])  # type: ignore[arg-type]
    assert "dcap_qvl" not in loaded["top_level"]  # type: ignore[operator]  # a node verifies no quote


def test_job_commands_against_a_node_never_load_torch(workspace: Workspace, tmp_path: Path) -> None:
    node = workspace.node()
    try:
        owners = list(in_threads(*(numpy_owner(workspace, node.address, n, v) for n, v in (("alice", 1), ("bob", 3)))))
        finish(
            *start(
                tmp_path,
                "submit",
                *model_owner_args(workspace, "submit", node.address),
                "--model",
                str(workspace.model_file),
            )
        )
        finish(*start(tmp_path, "status", *model_owner_args(workspace, "status", node.address)))
        finish(*start(tmp_path, "watch", *model_owner_args(workspace, "watch", node.address)))
        finish(
            *start(
                tmp_path,
                "download",
                *model_owner_args(workspace, "download", node.address),
                "--out",
                str(tmp_path / "final.safetensors"),
            )
        )
        for thread in owners:
            thread.join(30)
    finally:
        node.stop(0)
    assert not any(thread.is_alive() for thread in owners)
