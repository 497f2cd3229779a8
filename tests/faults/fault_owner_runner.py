"""A data-owner process for the fault suite: attests, trains, uploads; reconnects and re-attests after faults.

    python fault_owner_runner.py --job JOB.toml --name alice --credentials DIR --platform-dir DIR \
        --address 127.0.0.1:PORT --state DIR --report REPORT.json

Exit codes: 0 the job finished, 3 RollbackDetected or a leaf of it (printed on stderr), 4 another enclavefl error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from fault_task import CHUNK_BYTES, TASK, credential_paths, fault_policy, owner_data

from enclavefl.core.jobfile import load_job
from enclavefl.errors import EnclaveFLError, RollbackDetected
from enclavefl.owner.attested import AttestedNode, connect_data_owner
from enclavefl.owner.chain_view import ReceiptChainView
from enclavefl.owner.data_owner import DataOwner
from enclavefl.owner.data_owner_loop import run_data_owner
from enclavefl.owner.owner_state import PersistentReceiptTracker
from enclavefl.owner.reconnect import Reconnect, reconnect_to_node
from enclavefl.transport.owner_tls import OwnerCredentials


def main() -> int:
    parser = argparse.ArgumentParser()
    for flag in ("--job", "--credentials", "--platform-dir", "--state", "--report"):
        parser.add_argument(flag, type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--hold-round", type=int, default=None, help="wait before the first upload of this round")
    parser.add_argument("--hold-seconds", type=float, default=0.0)
    parser.add_argument("--gate-round", type=int, default=None, help="before this round's upload, wait for --gate-file")
    parser.add_argument("--gate-file", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format=f"{args.name} %(asctime)s %(levelname)s: %(message)s")
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)

    job = load_job(args.job)
    policy = fault_policy(args.platform_dir)  # INSECURE: accepts the simulated enclave (tests only)
    credentials = OwnerCredentials.load(*credential_paths(args.credentials, args.name))

    def connect() -> AttestedNode:
        return connect_data_owner(
            args.address, name=args.name, job=job, policy=policy, credentials=credentials, chunk_bytes=CHUNK_BYTES
        )

    reconnect = Reconnect(connect=connect, give_up_after_seconds=60.0, retry_seconds=0.2)
    tracker = PersistentReceiptTracker.open(args.state, job_digest=job.digest())
    try:
        node = reconnect_to_node(reconnect)
        data = owner_data(args.name)
        owner_class = DataOwner if args.hold_round is None else held_owner(args.hold_round, args.hold_seconds)
        if args.gate_round is not None and args.gate_file is not None:
            owner_class = gated_owner(owner_class, args.gate_round, args.gate_file)
        chain = ReceiptChainView(job_digest=job.digest(), tracker=tracker)
        owner = owner_class(name=args.name, task=TASK, data=data, job=job, chain=chain)
        report = run_data_owner(owner, node, reconnect=reconnect)
    except RollbackDetected as exc:  # or its leaves RoundAlreadySigned, ConflictingReceipts: printed by name
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 3
    except EnclaveFLError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 4
    args.report.write_text(
        json.dumps(
            {
                "contributed": report.contributed,
                "refused": report.refused,
                "reconnects": report.reconnects,
                "interrupted": report.interrupted,
                "final_state": report.final_state.value,
                "head_round": tracker.head_round,
            }
        )
    )
    return 0


def held_owner(round_index: int, seconds: float) -> type[DataOwner]:
    """A DataOwner that waits once before uploading `round_index`: keeps that round open for the test to act."""

    class HeldOwner(DataOwner):
        held = False

        def run_round(self, r: int, **kwargs: Any) -> Any:
            if r == round_index and not HeldOwner.held:
                HeldOwner.held = True
                time.sleep(seconds)
            return super().run_round(r, **kwargs)

    return HeldOwner


def gated_owner(base: type[DataOwner], round_index: int, gate: Path) -> type[DataOwner]:
    """A DataOwner that uploads `round_index` only once the test created `gate`: the job cannot end before then.

    Not a timing crutch for the owner: it lets a test act on the job's earlier rounds however late it observes
    them (a loaded test process can miss rounds that take 75 ms), while every later round still runs normally.
    """

    class GatedOwner(base):  # type: ignore[valid-type,misc]
        def run_round(self, r: int, **kwargs: Any) -> Any:
            if r == round_index:
                deadline = time.monotonic() + 120.0  # bounded: a test that forgot the gate still ends
                while not gate.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
            return super().run_round(r, **kwargs)

    return GatedOwner


if __name__ == "__main__":
    sys.exit(main())
