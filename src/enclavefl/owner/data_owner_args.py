"""The data owner's light entry point's command line (`python -m enclavefl.owner.data_owner_main --help`).

    args = build_parser().parse_args(["--node", "host:7443", "--job", "job.toml", ...])

The same options as `enclavefl data-owner run` (cli/data_owner.py), in argparse: no CLI libraries to import.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from enclavefl.core.exit_codes import DATA_OWNER_RUN_EXIT_CODES, exit_status_lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m enclavefl.owner.data_owner_main",
        description="Run one enclavefl data owner.",
        epilog="\n".join(exit_status_lines(*DATA_OWNER_RUN_EXIT_CODES)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--node", required=True, help="the node's HOST:PORT")
    parser.add_argument("--job", type=Path, required=True, help="the job spec you agreed to (TOML)")
    parser.add_argument("--policy", type=Path, required=True, help="your attestation policy (TOML)")
    parser.add_argument("--task", required=True, help="MODULE:ATTR or file.py:ATTR naming the training Task")
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="safetensors file with tensors x and y, or a path the task's load_data reads",
    )
    parser.add_argument("--key", type=Path, required=True, help="your private key (PEM)")
    parser.add_argument("--cert", type=Path, required=True, help="your certificate enrolled in the job (PEM)")
    parser.add_argument("--name", default=None, help="your name in the job (default: the certificate's CN)")
    parser.add_argument(
        "--state",
        type=Path,
        default=None,
        help="directory of your durable state: the rounds you signed, the receipt chain, the salts that open your "
        "receipt commitments, your privacy ledger (default: $XDG_STATE_HOME/enclavefl/data-owners/<certificate "
        "fingerprint>, else ~/.local/state/...; locked per job while you run)",
    )
    parser.add_argument(
        "--insecure-no-state",
        action="store_true",
        help="INSECURE: keep no state; a restarted owner can be made to upload a round it signed to a rolled-back "
        "node, which can reveal an owner's exact update",
    )
    parser.add_argument("--connect-timeout", type=float, default=120.0, help="seconds to keep trying the node")
    parser.add_argument("--pccs-url", default=None, help="verify with collateral from this PCCS, not the node's")
    return parser
