"""An aggregator node process for the fault suite: resumes from its sealed checkpoints, serves until killed.

    python fault_node_runner.py --job JOB.toml --state DIR --listen 127.0.0.1:PORT --platform-dir DIR \
        --initial-model MODEL.safetensors --report REPORT.json [--crash-at checkpoint-before-rename@5]

Exit codes: 0 the job finished (after --linger seconds of serving the final model), 1 the job failed,
2 the checkpoint was refused (CheckpointError, printed on stderr). INSECURE simulated enclave (tests only).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from enclavefl.core.jobfile import load_job, read_initial_model
from enclavefl.enclave.checkpoint import open_checkpoint_store
from enclavefl.enclave.crash_points import POINTS, install_crash_hook
from enclavefl.enclave.node import AggregatorNode
from enclavefl.errors import CheckpointError
from enclavefl.tee.insecure.simulation import InsecureSimulationBackend, SimulatedPlatform
from enclavefl.transport.api import JobState
from enclavefl.transport.tls import split_address

CHUNK_BYTES = 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--platform-dir", type=Path, required=True)
    parser.add_argument("--initial-model", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--linger", type=float, default=600.0)
    parser.add_argument("--crash-at", help="POINT@ROUND: SIGKILL this process there (enclave/crash_points.py)")
    args = parser.parse_args()
    if args.crash_at:
        install_crash_hook(sigkill_at(args.crash_at))
    logging.basicConfig(level=logging.INFO, format="node %(asctime)s %(levelname)s %(name)s: %(message)s")
    warnings.simplefilter("ignore")  # the simulated enclave warns INSECURE; the test knows

    job = load_job(args.job)
    tee = InsecureSimulationBackend(SimulatedPlatform.load_or_create(args.platform_dir))
    host, port = split_address(args.listen)
    try:
        store = open_checkpoint_store(args.state, tee=tee, job_digest=job.digest())
        node = AggregatorNode(
            job=job,
            tee=tee,
            initial_model=read_initial_model(args.initial_model),
            checkpoints=store,
        ).serve_grpc(host=host, port=port, chunk_bytes=CHUNK_BYTES)
    except CheckpointError as exc:
        print(f"CheckpointError: {exc}", file=sys.stderr, flush=True)
        return 2
    node.start()
    print(f"LISTENING {node.address} {node.node_status().job_message}", flush=True)
    status = node.wait()
    args.report.write_text(
        json.dumps(
            {
                "job_state": status.job_state.value,
                "message": status.job_message,
                "rejections": dict(node.rejections),
                "rounds_completed": status.rounds_completed,
            }
        )
    )
    print(f"DONE {status.job_state.value}: {status.job_message}", flush=True)
    time.sleep(args.linger)  # keep serving the final model and receipts; the test kills us
    node.stop(0)
    return 0 if status.job_state is JobState.FINISHED else 1


def sigkill_at(armed: str) -> Callable[[str, int], None]:
    """A crash hook that SIGKILLs this process at `POINT@ROUND`: no cleanup runs, as when the host pulls the plug."""
    point, _, round_text = armed.partition("@")
    if point not in POINTS or not round_text.isdigit():
        raise SystemExit(f"--crash-at {armed!r}: expected POINT@ROUND with POINT one of {', '.join(POINTS)}")

    def hook(at_point: str, round_index: int) -> None:
        if (at_point, round_index) == (point, int(round_text)):
            logging.getLogger(__name__).critical("fault injection: SIGKILL at %s in round %d", point, round_index)
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


if __name__ == "__main__":
    sys.exit(main())
