"""What the owners' commands say when they stop or when a policy is insecure: light, so `job ...` and
`receipts verify` print it without importing the data owner's torch (owner/data_owner_main.py re-exports it)."""

from __future__ import annotations

from enclavefl.errors import EnclaveFLError, RollbackDetected
from enclavefl.tee.evidence import VerifiedEnclave
from enclavefl.tee.verify.policy import AttestationPolicy

ROLLBACK_ADVICE = (
    "The node came back behind the receipts you already verified: it was restarted from older state, or from "
    "none, and nothing more was sent to it. What the operator can do: restart the node on its latest state "
    "directory (the 'node state:' line `node serve` printed at start). If that state is lost, this job cannot "
    "go on safely: the model owner writes a new job spec and every party agrees to it again. Do not delete "
    "your own --state to get past this: forgetting what you verified is what a rollback needs."
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
