"""A data owner's way back to a node that went away: connect and attest again, patiently, then go on.

    reconnect = Reconnect(connect=lambda: connect_data_owner("host:port", name="alice", ...))
    node = reconnect_to_node(reconnect)          # ProtocolError once unreachable for give_up_after_seconds

The node may come back with another key, on another machine: the owner attests it afresh (fresh nonce, fresh pin)
and refuses a node whose receipt chain does not extend the last one it verified (RollbackDetected).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from enclavefl.errors import ProtocolError
from enclavefl.owner.attested import AttestedNode


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconnect:
    """How a data owner gets back to a node that went away: `connect` again (fresh nonce, fresh pin), patiently.

    Waits start at `retry_seconds` and double up to `max_retry_seconds`; `on_retry` hears of every failed try
    (so a user is never left in silence while the node is unreachable).
    """

    connect: Callable[[], AttestedNode]
    give_up_after_seconds: float = 120.0
    retry_seconds: float = 0.5
    max_retry_seconds: float = 2.0
    on_retry: Callable[[RetryNotice], None] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryNotice:
    """One failed attempt to reach the node: what failed, the next wait, and how long trying goes on."""

    attempt: int
    error: Exception
    retry_in_seconds: float
    gives_up_in_seconds: float
    give_up_after_seconds: float

    def describe(self) -> str:
        what = " ".join(str(self.error).split())[:200]
        return (
            f"node unreachable (attempt {self.attempt}: {type(self.error).__name__}: {what}); retrying in "
            f"{self.retry_in_seconds:.1f} s, giving up in {self.gives_up_in_seconds:.0f} s "
            f"(--connect-timeout {self.give_up_after_seconds:g})"
        )


def reconnect_to_node(
    reconnect: Reconnect,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> AttestedNode:
    """Connect and attest again until it works; ProtocolError after `give_up_after_seconds` of unreachability.

    Only an unreachable node is retried: a node that answers but fails attestation or refuses the join raises
    that precise error at once.
    """
    deadline = monotonic() + reconnect.give_up_after_seconds
    wait, attempt = reconnect.retry_seconds, 0
    while True:
        attempt += 1
        try:
            return reconnect.connect()
        except ProtocolError as exc:
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise ProtocolError(
                    f"the node stayed unreachable for {reconnect.give_up_after_seconds:g} s ({attempt} attempts): {exc}"
                ) from None
            wait = min(wait, remaining)
            if reconnect.on_retry is not None:
                notice = RetryNotice(
                    attempt=attempt,
                    error=exc,
                    retry_in_seconds=wait,
                    gives_up_in_seconds=remaining,
                    give_up_after_seconds=reconnect.give_up_after_seconds,
                )
                reconnect.on_retry(notice)
            sleep(wait)
            wait = min(wait * 2, reconnect.max_retry_seconds)
