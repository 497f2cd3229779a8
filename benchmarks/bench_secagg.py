"""Masked mode: the enclave's round work against the plaintext fold, and the owners' mask throughput.

1. Enclave round work: n owners, P float32 parameters, a share of them dropping out after sharing their seeds.
   Plaintext: FedAvg (unweighted) folds the survivors' updates and finalizes. Masked: MaskedRound (the enclave's
   code) relays real keys and Shamir shares, folds the survivors' masked inputs modulo 2^bits, rebuilds every
   survivor's self-mask seed and every dropout's mask key from the real unmask answers, removes the leftover
   masks, decodes, checks the sum's bound and finalizes. Both in the same run; reported as a ratio.
   The masked inputs are built so that their sum is exactly what the owners' masks would give (the first
   survivor carries it, the others send zero vectors of the same size): the enclave does the full unmasking
   and the result is checked against the plaintext mean, without spending minutes on 100 owners' masking.
2. Owner mask throughput: one owner masks a P-parameter update (its self mask and one pairwise mask per
   neighbour) against the raw AES-256-CTR keystream of the same total length (OpenSSL, `cryptography`).
3. Owner noise (the default for masked DP jobs): one owner adds its share of Skellam noise to the same encoded
   update (noise multiplier 1, clip 1, K = the survivors), against the raw ChaCha20 keystream the sampler reads
   (32 bytes per coordinate: two Poisson draws of two uniforms each, before rejections).

Run: .venv/bin/python benchmarks/bench_secagg.py [--owners 100] [--params 10000000] [--dropout 0.1]
     [--bits 32] [--degree 14] [--threshold 8]   (quick: --owners 20 --params 200000; --smoke: tiny)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from enclavefl.aggregation import FedAvg
from enclavefl.core.job import DataOwnerSpec, JobSpec, StrategySpec, TrainConfig
from enclavefl.core.secure_aggregation import SecureAggregationSpec
from enclavefl.core.weights import ModelWeights
from enclavefl.enclave.masked.round import MaskedRound
from enclavefl.privacy.distributed import SkellamSource, add_owner_noise_inplace, owner_variance
from enclavefl.secagg.fixedpoint import FixedPoint
from enclavefl.secagg.graph import graph_seed, pair_sign
from enclavefl.secagg.keys import RoundKeys, pairwise_seed
from enclavefl.secagg.masking import MaskingSession
from enclavefl.secagg.messages import KeyAdvertisement
from enclavefl.secagg.prg import add_mask_inplace, raw_keystream_into
from enclavefl.secagg.vector import flat_delta


def model(params: int, value: float) -> ModelWeights:
    return ModelWeights({"w": np.full(params, value, dtype=np.float32)})


def run(owners: int, params: int, dropout: float, bits: int, degree: int, threshold: int) -> dict[str, object]:
    names = [f"owner-{i:03d}" for i in range(owners)]
    dropped = set(names[:: max(1, round(1 / dropout))][: round(owners * dropout)]) if dropout > 0 else set()
    survivors = [n for n in names if n not in dropped]
    spec = SecureAggregationSpec(degree=degree, threshold=threshold, scale=float(1 << 16), modulus_bits=bits)
    base = model(params, 0.0)
    job = JobSpec(
        name="bench",
        rounds=1,
        train=TrainConfig(local_steps=1),
        min_contributions=2,
        strategy=StrategySpec(name="fedavg", params={"weighted": False}),
        data_owners=tuple(DataOwnerSpec(name=n) for n in names),
        model_schema=base.schema,
        secure_aggregation=spec,
    )
    context = graph_seed(job_digest=job.digest(), round_index=1, attempt=1)
    codec = FixedPoint(scale=spec.scale, bits=bits)
    # every survivor's update is the same small vector (test data): the expected mean is that vector
    update = model(params, 1e-4)
    delta = flat_delta(update, base)

    # --- plaintext fold (median of 3: the machine may be shared) ------------------------------
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        plain = FedAvg(weighted=False).start_round(base)
        for _ in survivors:
            plain.fold_inplace(update, weight=1.0)
        plain.finalize()
        runs.append(time.perf_counter() - started)
    plaintext_s = statistics.median(runs)

    # --- protocol set-up (not timed: the owners' side) ----------------------------------------
    keys = {n: RoundKeys.generate() for n in names}
    sessions = {n: MaskingSession(owner=n, spec=spec, context=context, keys=keys[n]) for n in names}
    masked = MaskedRound(job=job, global_model=base, context=context, dp=None)
    for n in names:
        masked.advertise(sessions[n].advertisement())
    masked.close_keys()
    roster = masked.roster()
    for n in names:
        masked.submit_bundles(n, sessions[n].share_bundles(roster))
    masked.close_shares()
    for n in names:
        sessions[n].receive_bundles(masked.bundles_for(n))
    neighbours = masked._neighbours  # the graph the enclave derived (read for the set-up only)
    total = np.zeros(codec.encode(delta).size, dtype=codec.uint)
    for n in survivors:  # the sum of the survivors' masked inputs, mask by mask
        total += codec.encode(delta)
        add_mask_inplace(total, keys[n].self_mask_seed)
        for peer in neighbours[n]:
            if peer in dropped:  # masks between two survivors cancel; those with a dropout stay
                seed = pairwise_seed(keys[n].mask_private, roster_key(roster, peer), context=context, pair=(n, peer))
                add_mask_inplace(total, seed, sign=pair_sign(n, peer))
    payload = total.tobytes()
    zeros = bytes(len(payload))

    # --- the enclave's masked round (timed) ---------------------------------------------------
    started = time.perf_counter()
    for i, n in enumerate(survivors):
        masked.fold_masked(n, payload if i == 0 else zeros)
    fold_s = time.perf_counter() - started
    masked.close_uploads()
    alive = masked.survivors()
    answers_started = time.perf_counter()
    answers = [sessions[n].unmask_shares(alive) for n in survivors]  # owners' side: excluded from the timing
    answers_s = time.perf_counter() - answers_started
    for answer in answers:
        masked.submit_answer(answer)
    finalize_started = time.perf_counter()
    result = masked.finalize()
    finalize_s = time.perf_counter() - finalize_started
    masked_s = time.perf_counter() - started - answers_s
    error = float(np.max(np.abs(np.asarray(result["w"], np.float64) - 1e-4)))
    assert error <= codec.sum_error_bound(len(survivors)) / len(survivors) + 1e-9, error

    # --- one owner's masking against the raw keystream ----------------------------------------
    owner = survivors[0]
    streams = 1 + len(sessions[owner].peers)
    encoded = codec.encode(delta)
    started = time.perf_counter()
    sessions[owner].mask_inplace(encoded)
    mask_s = time.perf_counter() - started
    raw = bytearray(encoded.nbytes + 15)
    started = time.perf_counter()
    for _ in range(streams):
        raw_keystream_into(bytes(32), raw)
    raw_s = time.perf_counter() - started
    mib = encoded.nbytes * streams / 2**20
    noise_s, chacha_s = owner_noise_seconds(codec.encode(delta), scale=spec.scale, owners=len(survivors))
    # the keystreams the enclave must expand (one per survivor, one per survivor-dropout edge), at raw speed:
    # the part of the masked round no implementation of SecAgg+ with this PRG can avoid
    unmask_streams = len(survivors) + sum(1 for d in dropped for p in neighbours[d] if p not in dropped)
    aes_floor_s = raw_s / streams * unmask_streams
    return {
        "owners": owners,
        "params": params,
        "dropped": len(dropped),
        "bits": bits,
        "degree": degree,
        "threshold": threshold,
        "plaintext_fold_s": round(plaintext_s, 3),
        "masked_round_s": round(masked_s, 3),
        "masked_fold_s": round(fold_s, 3),
        "unmask_finalize_s": round(finalize_s, 3),
        "enclave_ratio": round(masked_s / plaintext_s, 2),
        "max_error": error,
        "unmask_streams": unmask_streams,
        "aes_floor_s": round(aes_floor_s, 3),
        "owner_mask_streams": streams,
        "owner_mask_mib_s": round(mib / mask_s, 1),
        "raw_aes_ctr_mib_s": round(mib / raw_s, 1),
        "owner_throughput_ratio": round(raw_s / mask_s, 2),
        "owner_noise_s": round(noise_s, 3),
        "owner_noise_vs_mask": round(noise_s / mask_s, 2),
        "owner_noise_vs_chacha20_keystream": round(noise_s / chacha_s, 1),
    }


def owner_noise_seconds(encoded: np.ndarray, *, scale: float, owners: int) -> tuple[float, float]:
    """(seconds to add one owner's Skellam share, seconds for the ChaCha20 keystream it reads), medians of 3."""
    variance = owner_variance(noise_multiplier=1.0, dp_clip=1.0, scale=scale, min_contributors=owners)
    noise, keystream = [], []
    for _ in range(3):
        source = SkellamSource(key=os.urandom(32))
        started = time.perf_counter()
        add_owner_noise_inplace(encoded, source=source, variance=variance)
        noise.append(time.perf_counter() - started)
        started = time.perf_counter()
        SkellamSource(key=os.urandom(32)).uniforms(4 * encoded.size)
        keystream.append(time.perf_counter() - started)
    return statistics.median(noise), statistics.median(keystream)


def roster_key(roster: tuple[KeyAdvertisement, ...], name: str) -> bytes:
    return next(ad.mask_public for ad in roster if ad.owner == name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--owners", type=int, default=100)
    parser.add_argument("--params", type=int, default=10_000_000)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--bits", type=int, choices=(32, 64), default=32)
    parser.add_argument("--degree", type=int, default=14, help="neighbours per owner (even; ~2 log2 n)")
    parser.add_argument("--threshold", type=int, default=8)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run for the test suite (tests/benchmarks): runs end to end and prints the table; no figures",
    )
    args = parser.parse_args()
    if args.smoke:
        args.owners, args.params, args.degree, args.threshold = 6, 1_000, 4, 3
    with threadpool_limits(1):
        print(json.dumps(run(args.owners, args.params, args.dropout, args.bits, args.degree, args.threshold), indent=1))


if __name__ == "__main__":
    main()
