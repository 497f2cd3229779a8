"""The `--now` value `attest verify` and `receipts verify` share: when to judge attestation evidence.

    parse_verification_time("1767225600")            # unix seconds
    parse_verification_time("2026-01-01T00:00:00Z")  # ISO 8601; a time without a zone is UTC
    parse_verification_time(None)                    # the present

Both commands judge evidence at the present unless told otherwise, and take the same forms here, so one value
pasted into either means the same moment.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Final

from enclavefl.errors import ConfigError

NOW_HELP: Final = (
    "When to judge the evidence: unix seconds or an ISO 8601 time (2026-01-31T12:00:00Z; no zone means UTC). "
    "Default: the present."
)


def parse_verification_time(text: str | None) -> int:
    """Unix seconds for `--now` (the present when None); ConfigError names the value that is neither form."""
    if text is None:
        return int(time.time())
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"--now {text!r}: expected unix seconds (1767225600) or an ISO 8601 time (2026-01-01T00:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())
