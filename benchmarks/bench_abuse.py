"""Round time of N honest data owners with and without an abusive enrolled client, same run (issue 12 part 3).

Each run is one round of tests/integration/abuse_scenario.py: an in-process node (simulated enclave, the default
`node serve` limits) and N owner threads, each with its own gRPC/TLS channel on loopback, that attest (dcap-qvl),
join, upload a tiny update, sign the sealed receipt and wait for the release. With the abuser, an enrolled client
also opens as many Watch streams as it can (up to 400 attempts, holding each), downloads the model in a loop and
floods Attest from two connections. Runs alternate (clean, abused, clean, ...) so machine load hits both alike.
The round time is from the owners' start to the node's release. Reported: medians, their ratio, and the counts.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_abuse.py [--owners 100] [--repeats 3] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))  # the scenario is shared with the load test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--owners", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--unlimited-timeout",
        type=float,
        default=0.0,
        help="also run the abused round once with every limit lifted, giving up after this many seconds (0: skip)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run for the test suite (tests/benchmarks): runs end to end and prints the table; no figures",
    )
    args = parser.parse_args()
    if args.smoke:
        args.owners, args.repeats, args.unlimited_timeout = 2, 1, 0.0

    from abuse_scenario import AbuseRun, run_abuse_scenario

    from enclavefl import simulated_enclave
    from enclavefl.transport.limits import NodeLimits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tee, policy = simulated_enclave(Path(tempfile.mkdtemp(prefix="bench-abuse-")))
        runs: dict[bool, list[AbuseRun]] = {False: [], True: []}
        for repeat in range(args.repeats):
            for abuser in (False, True):
                run = run_abuse_scenario(tee=tee, policy=policy, owners=args.owners, abuser=abuser)
                runs[abuser].append(run)
                print(
                    f"repeat {repeat + 1} {'abused' if abuser else 'clean '}: round {run.round_seconds:.2f} s, "
                    f"{len(run.completed)}/{run.owners} owners completed, failures {len(run.failures)}",
                    flush=True,
                )

        unlimited = None
        if args.unlimited_timeout > 0:
            lifted = NodeLimits(
                max_streams_per_peer=10**6,
                max_streams=10**6,
                max_held_per_peer=10**6,
                max_held=10**6,
                max_watchers_per_peer=10**6,
                max_watchers=10**6,
                attest_per_second=1e9,
                attest_per_second_total=1e9,
                max_attest_in_flight=10**6,
            )
            unlimited = run_abuse_scenario(
                tee=tee, policy=policy, owners=args.owners, abuser=True, limits=lifted, timeout=args.unlimited_timeout
            )

    clean = statistics.median(r.round_seconds for r in runs[False])
    abused = statistics.median(r.round_seconds for r in runs[True])
    attacks = runs[True]
    print()
    print(f"owners (honest)                     {args.owners} (+1 abusive, enrolled)")
    print(
        f"honest owners completed             clean {min(len(r.completed) for r in runs[False])}/{args.owners}, "
        f"abused {min(len(r.completed) for r in attacks)}/{args.owners} (worst run)"
    )
    print(f"round time, median                  clean {clean:.2f} s, abused {abused:.2f} s, ratio {abused / clean:.2f}")
    for label, attr in (
        ("Watch streams attempted", "streams_attempted"),
        ("  refused", "streams_refused"),
        ("  accepted", "streams_accepted"),
        ("downloads attempted", "downloads_attempted"),
        ("  refused", "downloads_refused"),
        ("Attest requests attempted", "attest_attempted"),
        ("  served", "attest_served"),
        ("  refused", "attest_refused"),
    ):
        values = [getattr(r.counts, attr) for r in attacks]
        print(f"{label:<36}{statistics.median(values):.0f} (median; runs: {values})")
    print(
        f"abuser's most streams at once       {[r.abuser_peak_streams for r in attacks]} (limit 4), watchers "
        f"{[r.abuser_peak_watchers for r in attacks]} (limit 2)"
    )
    refused: dict[str, list[int]] = {}
    for run in attacks:
        for limit in set(refused) | set(run.node_refused):
            refused.setdefault(limit, []).append(run.node_refused.get(limit, 0))
    for limit, values in sorted(refused.items()):
        print(f"node refusals {limit:<22}{values}")
    if unlimited is not None:
        print(
            f"limits lifted                       {len(unlimited.completed)}/{args.owners} owners completed, "
            f"round {unlimited.round_seconds:.2f} s (inf: not released within {args.unlimited_timeout:g} s), "
            f"abuser held {unlimited.abuser_peak_streams} streams at once"
        )
    print(
        f"honest clients' NodeBusy waits      clean {[r.honest_busy_waits for r in runs[False]]}, "
        f"abused {[r.honest_busy_waits for r in attacks]}"
    )


if __name__ == "__main__":
    main()
