"""One exit-status table for every enclavefl command, with the same meaning everywhere.

    raise typer.Exit(ExitCode.CONFIG)
    epilog = exit_status_help(ExitCode.FAILED)  # the codes this command uses, with 0, 2 and 130

The CLI (typer), the enclave's entry point and the data owner's entry point (argparse) all return these, and
each `--help` prints its part of the table from `EXIT_MEANINGS`, so the help, docs/cli.md and the code cannot
drift apart (tests/cli/test_exit_codes.py checks all three).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    CONFIG = 2
    ATTESTATION_REFUSED = 3
    REFUSED = 4
    SITE_POLICY_REFUSED = 5
    IN_USE = 6
    NO_VERDICT = 7
    INTERRUPTED = 130  # 128 + SIGINT, what shells already report for Ctrl-C


EXIT_MEANINGS: Final[dict[ExitCode, str]] = {
    ExitCode.OK: "done: the job finished, the quote was accepted, the files were written",
    ExitCode.FAILED: "the job ended without finishing (it failed, or a round could not close)",
    ExitCode.CONFIG: (
        "usage or configuration error (nothing was sent): a missing or wrong option, a file that is absent or "
        "malformed, a task or data that does not fit the job"
    ),
    ExitCode.ATTESTATION_REFUSED: (
        "attestation refused (nothing was sent): the enclave's evidence does not satisfy the policy"
    ),
    ExitCode.REFUSED: (
        "refused: the node (or a PCCS) was unreachable or refused the request, the receipt chain did not verify "
        "or went back (rollback), or a manifest or signature failed its check"
    ),
    ExitCode.SITE_POLICY_REFUSED: (
        "your own site policy or privacy ledger refused the job (nothing was sent to the node)"
    ),
    ExitCode.IN_USE: (
        "already running: another node holds this port or state directory, or this data owner already runs "
        "this job from this state directory (nothing started)"
    ),
    ExitCode.NO_VERDICT: "the quote verified but no --policy was given, so nothing was accepted",
    ExitCode.INTERRUPTED: "stopped by Ctrl-C or SIGTERM before the end",
}

# Every command can be mistyped or interrupted.
ALWAYS: Final = (ExitCode.OK, ExitCode.CONFIG, ExitCode.INTERRUPTED)
# What a node process can end with (`node serve`, the enclave's entry point); here so the CLI need not load the node.
NODE_EXIT_CODES: Final = (ExitCode.FAILED, ExitCode.IN_USE, ExitCode.INTERRUPTED)
# What a data owner's run can end with (`data-owner run`, python -m enclavefl.owner.data_owner_main).
DATA_OWNER_RUN_EXIT_CODES: Final = (
    ExitCode.FAILED,
    ExitCode.ATTESTATION_REFUSED,
    ExitCode.REFUSED,
    ExitCode.SITE_POLICY_REFUSED,
    ExitCode.IN_USE,
)


def exit_status_lines(*codes: ExitCode) -> list[str]:
    """'Exit status:' and one 'N = meaning' line per code, plus the codes every command has, in numeric order."""
    chosen = sorted(set(codes) | set(ALWAYS))
    return ["Exit status:", *(f"  {int(code):>3} = {EXIT_MEANINGS[code]}" for code in chosen)]


def exit_status_help(*codes: ExitCode) -> str:
    """The exit-status epilog for a typer command, one line per code."""
    return "\n".join(exit_status_lines(*codes))


def exit_status_table() -> str:
    """The whole table in Markdown (docs/cli.md holds a copy; a test keeps them equal)."""
    rows = [f"| {int(code)} | `{code.name}` | {meaning} |" for code, meaning in EXIT_MEANINGS.items()]
    return "\n".join(["| status | name | meaning |", "|---|---|---|", *rows])
