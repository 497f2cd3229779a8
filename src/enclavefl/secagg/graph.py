"""The SecAgg+ neighbour graph: a random k-regular Harary graph every party derives from public inputs.

    seed = graph_seed(job_digest=..., round_index=3, attempt=1)
    neighbours = harary_neighbours(["alice", "bob", ...], degree=8, seed=seed)   # {"alice": ("carol", ...)}

Bell et al. 2020: each owner masks and shares with O(log n) neighbours instead of all n - 1 others. The
owners are placed on a ring in an order fixed by HMAC-SHA256(seed, name) and each is linked to the degree/2
nearest on either side. The seed is a hash of the job digest and round, so the enclave, which only relays,
cannot pick a graph that isolates an owner; it only chooses who advertised keys (the owners see that list).
With n - 1 <= degree the graph is complete.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

_DOMAIN = b"enclavefl/secagg/graph/v1\x00"


def graph_seed(*, job_digest: bytes, round_index: int, attempt: int) -> bytes:
    """The public seed of a round's graph (a re-opened round gets a new graph and fresh keys)."""
    return hashlib.sha256(_DOMAIN + job_digest + round_index.to_bytes(8, "big") + attempt.to_bytes(8, "big")).digest()


def harary_neighbours(owners: Iterable[str], *, degree: int, seed: bytes) -> Mapping[str, tuple[str, ...]]:
    """Each owner's neighbours (sorted), symmetric, `degree` each (or everyone else when n - 1 <= degree)."""
    names = sorted(set(owners))
    if degree < 2 or degree % 2:
        raise ValueError(f"the graph degree is an even number >= 2, got {degree}")
    if len(names) - 1 <= degree:
        return {name: tuple(n for n in names if n != name) for name in names}
    ring = sorted(names, key=lambda name: hmac.new(seed, name.encode(), hashlib.sha256).digest())
    count = len(ring)
    out: dict[str, tuple[str, ...]] = {}
    for i, name in enumerate(ring):
        linked = {ring[(i + d) % count] for d in range(1, degree // 2 + 1)}
        linked |= {ring[(i - d) % count] for d in range(1, degree // 2 + 1)}
        out[name] = tuple(sorted(linked))
    return out


def holders_of(owner: str, neighbours: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Who holds shares of `owner`'s seeds, in x-coordinate order (x = index + 1): its neighbours and itself."""
    return tuple(sorted((*neighbours[owner], owner)))


def pair_sign(owner: str, peer: str) -> int:
    """+1 if `owner` adds the pairwise mask it shares with `peer`, -1 if it subtracts it."""
    return 1 if owner < peer else -1
