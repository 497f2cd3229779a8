"""What the owners' commands say when they stop or when a policy is insecure: light, so `job ...` and
`receipts verify` print it without importing the data owner's torch (owner/data_owner_main.py re-exports it),
and the round lists of its final report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from enclavefl.errors import AttestationError, EnclaveFLError, MrEnclaveMismatch, MrSignerMismatch, RollbackDetected
from enclavefl.tee.verify.policy import AttestationPolicy
from enclavefl.tee.verify.verified import VerifiedEnclave

ROLLBACK_ADVICE = (
    "The node came back behind the receipts you already verified: it was restarted from older state, or from "
    "none, and nothing more was sent to it. What the operator can do: restart the node on its latest state "
    "directory (the 'node state:' line `node serve` printed at start). If that state is lost, this job cannot "
    "go on safely: the model owner writes a new job spec and every party agrees to it again. Do not delete "
    "your own state directory (or run with --insecure-no-state) to get past this: forgetting what you verified "
    "is what a rollback needs."
)


def describe_stop(exc: EnclaveFLError) -> str:
    """`Class: message`, plus what to do about it when there is something to do."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, RollbackDetected):
        text += f"\n{ROLLBACK_ADVICE}"
    return text


def policy_warning(name: str, policy: AttestationPolicy) -> str | None:
    """A one-line warning when the owner's policy accepts something insecure (simulation, any measurement)."""
    if policy.simulation_allowed:
        return f"[{name}] WARNING: your policy accepts INSECURE simulated enclaves (allow_simulation): development only"
    if policy.accepts_any_measurement_insecure:
        return f"[{name}] WARNING: your policy accepts ANY enclave code (allow_any_measurement_insecure)"
    return None


def describe_enclave(verified: VerifiedEnclave) -> str:
    mrenclave = verified.mrenclave.hex() if verified.mrenclave is not None else "-"
    insecure = "; INSECURE simulated evidence (the policy allows simulation)" if verified.simulated else ""
    return f"node attested: MRENCLAVE {mrenclave}, TCB {verified.tcb_status}, debug={verified.debug}{insecure}"


def describe_refusal(exc: AttestationError, policy: AttestationPolicy) -> str:
    """`Class: message`, plus what the policy allows when a measurement did not match."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, MrEnclaveMismatch):
        allowed = ", ".join(sorted(m.hex() for m in policy.allowed_mrenclaves))
        text += f" (the policy allows MRENCLAVE {allowed})"
    elif isinstance(exc, MrSignerMismatch):
        allowed = ", ".join(sorted(m.hex() for m in policy.allowed_mrsigners))
        text += f" (the policy allows MRSIGNER {allowed})"
    return text


def describe_state(state_dir: Path) -> str:
    """The line an owner prints at start: where its durable state is, and what to do with it."""
    return (
        f"keeping state in {state_dir} (the rounds you signed, the receipt chain, your commitment salts and privacy "
        "ledger): back it up, move it only with --state, never delete it while you take part in a job"
    )


def state_warning(name: str, state_dir: Path | None) -> str | None:
    """A loud warning when the owner opted out of durable state (`--insecure-no-state`)."""
    if state_dir is not None:
        return None
    return (
        f"[{name}] WARNING: INSECURE: --insecure-no-state keeps nothing on disk. If this process restarts it forgets "
        "the rounds it signed and the receipts it verified: an operator who rolls the node back can get a round "
        "released twice with one owner fewer, which gives that owner's exact update; your commitment salts (proof "
        "of inclusion) and your privacy ledger are not kept either"
    )


def format_rounds(rounds: Sequence[int]) -> str:
    """Round numbers as ranges: [1, 2, 3, 5, 5, 6] -> '1-3, 5 (twice), 6' (a retried round shows its count)."""
    counts = Counter(rounds)
    parts: list[str] = []
    run: list[int] = []

    def flush() -> None:
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
            run.clear()

    for number in sorted(counts):
        if counts[number] > 1:
            flush()
            times = "twice" if counts[number] == 2 else f"{counts[number]} times"
            parts.append(f"{number} ({times})")
        elif run and number == run[-1] + 1:
            run.append(number)
        else:
            flush()
            run.append(number)
    flush()
    return ", ".join(parts) if parts else "none"
