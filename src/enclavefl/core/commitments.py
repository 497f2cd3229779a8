"""Update commitments: what a receipt lists instead of an update's hash, so that it is no dictionary oracle.

A data owner's trained update is a deterministic function of the global model, its data and the public job
configuration. Its plain SHA-256 in a receipt would let anyone holding the receipt test "was dataset D or
D ∪ {x} used?" exactly, by re-training both candidates and hashing (issue 10 §4), outside any DP guarantee.
So each upload carries a commitment under a fresh secret salt that only the owner (and, over TLS that ends
inside it, the enclave) ever sees:

    commitment = HMAC-SHA256(key = salt, message = DOMAIN || SHA-256(payload))      salt: 32 bytes, os.urandom

Why HMAC with the salt as key (rather than SHA-256(domain || salt || hash)):
- hiding: HMAC-SHA256 is a PRF; under a uniformly random 256-bit key its output is indistinguishable from
  random to anyone without the key, whatever payload candidates they hold. That is a standard-model property
  of HMAC, where the salted plain hash needs the random-oracle idealisation of SHA-256 for the same claim;
- binding: the salt length is fixed (32 bytes, below SHA-256's 64-byte block, so HMAC never hashes or pads
  it ambiguously) and so is the message (domain || 32 bytes). Two different (salt, payload hash) openings of
  one commitment give a collision of SHA-256 in HMAC's inner or outer call. The enclave recomputes the
  commitment from the bytes it received, so a commitment to anything else is refused (CommitmentMismatch).

The enclave checks commitments (`check_commitment`); making them (a fresh salt per upload, the commitment to the
payload) is the owner's, in core/update_message.py, outside the enclave's import closure. An owner proves
inclusion to a third party by revealing the salt and the payload (or its hash): anyone can then recompute the
commitment and find it in the signed receipt. Nobody else learns anything from it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from enclavefl.errors import CommitmentMismatch

SALT_BYTES: Final = 32
COMMITMENT_BYTES: Final = 32
_DOMAIN: Final = b"enclavefl/update-commitment/v1\x00"


def update_commitment(*, salt: bytes, payload_sha256: bytes) -> bytes:
    """HMAC-SHA256(salt, DOMAIN || payload_sha256): hides the payload from anyone without the salt."""
    if len(salt) != SALT_BYTES:
        raise CommitmentMismatch(f"a commitment salt is {SALT_BYTES} bytes, got {len(salt)}")
    if len(payload_sha256) != 32:
        raise CommitmentMismatch(f"a payload SHA-256 is 32 bytes, got {len(payload_sha256)}")
    return hmac.new(salt, _DOMAIN + payload_sha256, hashlib.sha256).digest()


def check_commitment(*, salt: bytes, payload_sha256: bytes, commitment: bytes) -> None:
    """Raise CommitmentMismatch unless `commitment` opens to this payload hash under `salt`."""
    if len(commitment) != COMMITMENT_BYTES:
        raise CommitmentMismatch(f"a commitment is {COMMITMENT_BYTES} bytes, got {len(commitment)}")
    if not hmac.compare_digest(update_commitment(salt=salt, payload_sha256=payload_sha256), commitment):
        raise CommitmentMismatch(
            "the upload's commitment does not open to the payload received: it commits to other bytes"
        )
