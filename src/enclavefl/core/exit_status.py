"""The exit statuses as numbers: what every enclavefl process returns, the enclave's entry point included.

    return ExitCode.CONFIG                # a usage or configuration error (nothing was sent)

Only the numbers and their names live here, so that the enclave loads no help text it never prints for itself;
what each status means (the table `--help` and docs/cli.md print) is core/exit_codes.py, outside the enclave.
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


# What a node process can end with (`node serve`, the enclave's entry point); here so the CLI need not load the node.
NODE_EXIT_CODES: Final = (ExitCode.FAILED, ExitCode.IN_USE, ExitCode.INTERRUPTED)
