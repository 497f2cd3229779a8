"""Fold throughput and peak memory of the streaming FedAvg aggregator.

1. Throughput: folding a 10M-parameter float32 update (weighted) against numpy's in-place float32 add
   (`np.add(acc, x, out=acc)`) on the same arrays, in the same run: a ratio, not a time.
2. Peak memory: a fresh process folds N updates of a 10M-parameter model, each arriving as its own
   safetensors byte buffer (decoded zero-copy, folded, dropped). The node's peak RSS (global model,
   accumulator, the upload in hand) above the process's baseline, as a ratio to the model size, against the
   budget 2x model + 64 MiB; and, for contrast, the same aggregation done Flower-style (hold every update,
   then average). Linux only (/proc/self/status, clear_refs).

Run: .venv/bin/python benchmarks/bench_fold.py [--params 10000000] [--repeats 30] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from enclavefl.aggregation import FedAvg
from enclavefl.core.weights import ModelWeights

MIB = 1024 * 1024


def layered_model(params: int, layers: int = 8) -> ModelWeights:
    """A model of `params` float32 values spread over a few tensors (test data, not secrets)."""
    rng = np.random.default_rng(0)
    sizes = [params // layers] * (layers - 1)
    sizes.append(params - sum(sizes))
    return ModelWeights({f"layer{i}.weight": rng.standard_normal(n, dtype=np.float32) for i, n in enumerate(sizes)})


def throughput(params: int, repeats: int) -> dict[str, float]:
    model = layered_model(params)
    update = layered_model(params)
    acc = {n: np.zeros_like(a) for n, a in model.items()}

    def numpy_add() -> None:
        for n, a in acc.items():
            np.add(a, update[n], out=a)

    round_ = FedAvg(weighted=True).start_round(model)

    def fold() -> None:
        round_.fold_inplace(update, weight=17.0)

    unweighted = FedAvg(weighted=False).start_round(model)

    def fold_unweighted() -> None:
        unweighted.fold_inplace(update, weight=1.0)

    numpy_add(), fold(), fold_unweighted()  # warm up
    # Interleaved, one call of each per repeat: a neighbour's load or a frequency change hits all three alike.
    samples: dict[str, list[float]] = {"np": [], "fold": [], "unw": []}
    for _ in range(repeats):
        for key, fn in (("np", numpy_add), ("fold", fold), ("unw", fold_unweighted)):
            t0 = time.perf_counter()
            fn()
            samples[key].append(time.perf_counter() - t0)
    t_np, t_fold, t_unw = (statistics.median(samples[k]) for k in ("np", "fold", "unw"))
    nbytes = model.nbytes
    return {
        "numpy_add_gbps": nbytes / t_np / 1e9,
        "fold_weighted_gbps": nbytes / t_fold / 1e9,
        "fold_unweighted_gbps": nbytes / t_unw / 1e9,
        "ratio_weighted": t_np / t_fold,
        "ratio_unweighted": t_np / t_unw,
    }


CHILD = r"""
import json, sys
import numpy as np
from enclavefl.aggregation import FedAvg
from enclavefl.core.codec import decode_weights, encode_weights
sys.path.insert(0, sys.argv[4])                        # this script's directory, from any cwd
from bench_fold import layered_model
def status(key: str) -> int:
    line = next(l for l in open("/proc/self/status") if l.startswith(key))
    return int(line.split()[1]) * 1024
params, n, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
template = encode_weights(layered_model(params))       # the "network": not part of the node's memory
open("/proc/self/clear_refs", "w").write("5")          # reset the high-water mark (VmHWM)
base = status("VmRSS:")
model = decode_weights(template).copy()                 # the global model the node holds
model_bytes = model.nbytes
if mode == "streaming":
    r = FedAvg().start_round(model)
    for i in range(n):
        received = bytearray(template)                  # one owner's upload, as it arrives (a fresh buffer)
        r.fold_inplace(decode_weights(received), weight=float(i + 1))
        del received
    result = r.finalize()
else:                                                   # Flower-style: hold every update, then average
    held = [decode_weights(bytearray(template)) for _ in range(n)]
    total = sum(range(1, n + 1))
    result = {k: sum(h[k] * ((i + 1) / total) for i, h in enumerate(held)) for k in model}
peak = status("VmHWM:")
print(json.dumps({"peak_above_baseline": peak - base, "model_bytes": model_bytes}))
"""


def peak_memory(params: int, n: int, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(params), str(n), mode, str(Path(__file__).resolve().parent)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(out)
    model = data["model_bytes"]
    peak = data["peak_above_baseline"]
    return {"n": n, "peak_mib": peak / MIB, "ratio_to_model": peak / model, "budget_mib": (2 * model + 64 * MIB) / MIB}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--counts", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run for the test suite (tests/benchmarks): runs end to end and prints the table; no figures",
    )
    args = parser.parse_args()
    if args.smoke:
        args.params, args.repeats, args.counts = 100_000, 2, [2]

    with threadpool_limits(limits=1):  # one core, as the enclave runs it (OMP/BLAS threads = 1)
        t = throughput(args.params, args.repeats)
    print(f"fold throughput, {args.params / 1e6:.0f}M float32 params, one thread, median of {args.repeats}")
    print(f"  numpy in-place add (baseline) {t['numpy_add_gbps']:6.2f} GB/s")
    print(f"  streaming FedAvg, weighted     {t['fold_weighted_gbps']:6.2f} GB/s  ratio {t['ratio_weighted']:.2f}x")
    print(f"  streaming FedAvg, unweighted   {t['fold_unweighted_gbps']:6.2f} GB/s  ratio {t['ratio_unweighted']:.2f}x")
    print(f"\npeak memory above interpreter baseline, model {args.params * 4 / MIB:.0f} MiB")
    print(f"  {'mode':<12}{'N':>5}{'peak MiB':>10}{'x model':>9}{'budget MiB':>12}  within budget")
    for n in args.counts:
        m = peak_memory(args.params, n, "streaming")
        ok = "yes" if m["peak_mib"] <= m["budget_mib"] else "NO"
        row = f"{m['peak_mib']:>10.0f}{m['ratio_to_model']:>9.2f}{m['budget_mib']:>12.0f}"
        print(f"  {'streaming':<12}{n:>5}{row}  {ok}")
    m = peak_memory(args.params, args.counts[0], "hold-all")
    row = f"{m['peak_mib']:>10.0f}{m['ratio_to_model']:>9.2f}{m['budget_mib']:>12.0f}"
    print(f"  {'hold-all':<12}{args.counts[0]:>5}{row}  (Flower-style contrast)")


if __name__ == "__main__":
    main()
