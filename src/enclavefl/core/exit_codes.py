"""One exit-status table for every enclavefl command, with the same meaning everywhere.

    raise typer.Exit(ExitCode.CONFIG)
    epilog = exit_status_help(ExitCode.FAILED)  # the codes this command uses, with 0, 2 and 130

The CLI (typer), the enclave's entry point and the data owner's entry point (argparse) all return these, and
each `--help` outside the enclave prints its part of the table from `EXIT_MEANINGS`, so the help, docs/cli.md and
the code cannot drift apart (tests/cli/test_exit_codes.py checks all three). The numbers themselves are
core/exit_status.py, which the enclave loads alone: its entry point names its statuses and points here.
"""

from __future__ import annotations

from typing import Final

from enclavefl.core.exit_status import NODE_EXIT_CODES, ExitCode

__all__ = [
    "ALWAYS",
    "DATA_OWNER_RUN_EXIT_CODES",
    "EXIT_MEANINGS",
    "NODE_EXIT_CODES",
    "ExitCode",
    "exit_status_help",
    "exit_status_lines",
    "exit_status_table",
]

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
