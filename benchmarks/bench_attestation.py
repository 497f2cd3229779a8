"""Time simulated attestation against dcap-qvl verifying a real SGX quote, in the same run.

    python benchmarks/bench_attestation.py [--iterations 200] [--smoke]

Rows: simulated evidence generation (quote + cached collateral), dcap-qvl verification of that
evidence under the simulated root, both together, and the baseline: dcap-qvl verifying Phala's real
SGX sample quote with its collateral. Budget (DESIGN): generation + verification well under 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import dcap_qvl

from enclavefl.tee.insecure import InsecureSimulationBackend, InsecureSimulationWarning, SimulatedPlatform

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "phala-dcap-qvl"
SAMPLE_VERIFY_AT = 1752919277


def timed_ms(action: Callable[[], object], iterations: int) -> list[float]:
    """Wall times of `iterations` calls, in milliseconds, after one warm-up call."""
    action()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p95(samples: list[float]) -> float:
    return sorted(samples)[max(0, round(0.95 * len(samples)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--platform-dir", type=Path, help="reuse a simulated platform (default: a temp dir)")
    parser.add_argument("--vectors", type=Path, default=VECTORS, help="directory with sgx_quote(+_collateral.json)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run for the test suite (tests/benchmarks): runs end to end and prints the table; no figures",
    )
    args = parser.parse_args()
    if args.smoke:
        args.iterations = 3

    with tempfile.TemporaryDirectory() as scratch:
        platform = SimulatedPlatform.load_or_create(args.platform_dir or Path(scratch) / "platform")
        now = int(time.time())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureSimulationWarning)
            backend = InsecureSimulationBackend(platform, clock=lambda: now)
        report_data = bytes(range(64))
        evidence = backend.evidence(report_data)

        def verify_simulated() -> object:
            collateral = dcap_qvl.QuoteCollateralV3.from_json(evidence.collateral_json)
            return dcap_qvl.verify_with_root_ca(evidence.quote, collateral, platform.root_ca_der, now)

        def generate_and_verify() -> object:
            fresh = backend.evidence(report_data)
            collateral = dcap_qvl.QuoteCollateralV3.from_json(fresh.collateral_json)
            return dcap_qvl.verify_with_root_ca(fresh.quote, collateral, platform.root_ca_der, now)

        real_quote = (args.vectors / "sgx_quote").read_bytes()
        real_collateral = (args.vectors / "sgx_quote_collateral.json").read_text()

        def verify_real() -> object:
            collateral = dcap_qvl.QuoteCollateralV3.from_json(real_collateral)
            return dcap_qvl.verify(real_quote, collateral, SAMPLE_VERIFY_AT)

        assert verify_simulated().status == "UpToDate"  # type: ignore[attr-defined]
        rows = {
            "simulated evidence (quote)": timed_ms(lambda: backend.evidence(report_data), args.iterations),
            "dcap-qvl verify, simulated": timed_ms(verify_simulated, args.iterations),
            "simulated generate + verify": timed_ms(generate_and_verify, args.iterations),
            "baseline: dcap-qvl verify, real SGX": timed_ms(verify_real, args.iterations),
        }

    print(f"attestation timings over {args.iterations} iterations (ms)")
    print(f"{'operation':<38} {'median':>8} {'p95':>8}")
    for name, samples in rows.items():
        print(f"{name:<38} {statistics.median(samples):>8.3f} {p95(samples):>8.3f}")
    ratio = statistics.median(rows["simulated generate + verify"]) / statistics.median(
        rows["baseline: dcap-qvl verify, real SGX"]
    )
    print(f"ratio (simulated generate + verify) / (real verify), medians: {ratio:.2f}x")


if __name__ == "__main__":
    main()
