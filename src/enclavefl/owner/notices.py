"""What the owners' commands say when they stop or when a policy is insecure: light, so `job ...` and
`receipts verify` print it without importing the data owner's torch (owner/data_owner_main.py re-exports it)."""

from __future__ import annotations

from pathlib import Path

from enclavefl.errors import AttestationError, EnclaveFLError, MrEnclaveMismatch, MrSignerMismatch, RollbackDetected
from enclavefl.tee.evidence import VerifiedEnclave
from enclavefl.tee.verify.policy import AttestationPolicy

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
