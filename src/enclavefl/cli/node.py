"""`enclavefl node`: run the aggregator node (the secure worker) and write its data owners' policy."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel

from enclavefl.core.exit_codes import NODE_EXIT_CODES, ExitCode, exit_status_help
from enclavefl.errors import EnclaveFLError, StateDirInUse
from enclavefl.host.node_tee import (
    INSECURE_BANNER,
    TEE_CHOICES,
    default_state_dir,
    hold_state_dir,
    open_node_tee,
    write_simulation_policy,
)

app = typer.Typer(
    help=(
        "Run the aggregator node (the secure worker) for one job.\n\n"
        "On SGX hardware the node runs inside Gramine (a release: `enclavefl enclave init`, then its run.sh); for "
        "development `enclavefl node serve --tee insecure-simulation` runs the same node in a simulated enclave and "
        "`enclavefl node policy` writes the policy data owners need to accept it."
    ),
    no_args_is_help=True,
)
console = Console(stderr=True)


@app.callback()
def _node() -> None:
    """Run the aggregator node (the secure worker) and write its data owners' policy."""


@app.command(epilog=exit_status_help(*NODE_EXIT_CODES))
def serve(
    job: Annotated[Path, typer.Option(help="The job spec (TOML) every party agreed to.", dir_okay=False)],
    tee: Annotated[
        str,
        typer.Option(help=f"TEE backend: {' or '.join(TEE_CHOICES)} (INSECURE: a simulated enclave)."),
    ],
    platform_dir: Annotated[
        Path | None,
        typer.Option(help="insecure-simulation: the simulated SGX platform's directory (created if absent)."),
    ] = None,
    collateral: Annotated[
        Path | None,
        typer.Option(help="gramine: the DCAP collateral JSON `enclavefl node agent` keeps fresh (no network here)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on; 0 picks a free one.")] = 7443,
    state: Annotated[
        Path | None,
        typer.Option(
            help="Directory for sealed checkpoints (default: node-state-<job digest> beside the job file); "
            "a node restarted on it resumes the job."
        ),
    ] = None,
    ephemeral: Annotated[
        bool,
        typer.Option(
            "--ephemeral",
            help="Keep no state: a stopped node loses the job, and data owners refuse a restarted one (rollback).",
        ),
    ] = False,
    port_file: Annotated[
        Path | None, typer.Option(help="Write HOST:PORT here once listening (useful with --port 0).")
    ] = None,
    linger: Annotated[
        float, typer.Option(min=0, help="After the job: seconds to keep serving until the final model is fetched.")
    ] = 600.0,
    grace: Annotated[
        float,
        typer.Option(min=0, help="After the job: at most this many seconds more, until every data owner saw it end."),
    ] = 3.0,
    memory_limit_mib: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Refuse a job whose rounds need more memory (robust rules hold every update: (n+1)x the model).",
        ),
    ] = None,
    max_streams_per_peer: Annotated[
        int, typer.Option(min=1, help="Limit: concurrent streams (Watch, downloads, uploads) of one enrolled party.")
    ] = 4,
    max_streams: Annotated[int, typer.Option(min=1, help="Limit: streams of all parties together.")] = 64,
    max_held_per_peer: Annotated[
        int,
        typer.Option(
            min=1, help="Limit: calls of one party waiting for the node (status long polls, uploads, signatures)."
        ),
    ] = 8,
    max_held: Annotated[int, typer.Option(min=1, help="Limit: waiting calls of all parties together.")] = 4096,
    max_watchers_per_peer: Annotated[int, typer.Option(min=1, help="Limit: Watch streams of one party.")] = 2,
    max_watchers: Annotated[int, typer.Option(min=1, help="Limit: Watch streams in total.")] = 64,
    attest_per_second: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="Limit: unauthenticated calls (Attest, Challenge) per connection and second (bursts of twice this).",
        ),
    ] = 5.0,
    attest_per_second_total: Annotated[
        float, typer.Option(min=0.01, help="Limit: unauthenticated calls per second from everyone together.")
    ] = 200.0,
    max_attest_in_flight: Annotated[
        int, typer.Option(min=1, help="Limit: quotes made at once; more Attest calls are refused, not queued.")
    ] = 4,
    session_lifetime: Annotated[
        float, typer.Option(min=1, help="Seconds a joined party's session lasts; its client then joins again.")
    ] = 12 * 3600.0,
) -> None:
    """Serve JOB: attest to every caller, wait for the model owner's initial model, run every round.

    Each data owner verifies the node's quote (bound to its TLS key, the job digest and a fresh nonce) before
    it joins. A round closes when every enrolled owner contributed or at the job's deadline; with at least K
    updates the node releases the aggregate and signs the round's receipt. One line per round is printed.

    The limits (--max-streams-per-peer and the others) keep one abusive party from starving the rest: a call
    over a limit is refused at once with RESOURCE_EXHAUSTED naming the limit (clients wait and ask again).

    The node's state is durable by default: after every round it seals a checkpoint into the state directory
    (printed at start), and the same command run again resumes the job where it stopped.
    """
    from enclavefl.core.jobfile import load_job
    from enclavefl.enclave.main import ServeOptions, run_node_process
    from enclavefl.transport.limits import NodeLimits

    if tee == "insecure-simulation":
        console.print(Panel(f"[bold red]{INSECURE_BANNER}[/]", title="enclavefl node: INSECURE"))
    if ephemeral and state is not None:
        typer.echo("error: --ephemeral keeps no state; drop it or --state", err=True)
        raise typer.Exit(ExitCode.CONFIG)
    try:
        job_spec = load_job(job)
        backend = open_node_tee(tee, platform_dir=platform_dir, collateral=collateral)
        limits = NodeLimits(
            max_streams_per_peer=max_streams_per_peer, max_streams=max_streams,
            max_held_per_peer=max_held_per_peer, max_held=max_held,
            max_watchers_per_peer=max_watchers_per_peer, max_watchers=max_watchers,
            attest_per_second=attest_per_second, attest_per_second_total=attest_per_second_total,
            max_attest_in_flight=max_attest_in_flight, session_lifetime_seconds=session_lifetime,
        )  # fmt: skip
    except EnclaveFLError as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    state_dir = None if ephemeral else state or default_state_dir(job, job_spec)
    # The node's own lines (rounds, attests, joins, refusals) at INFO on stderr, unless --log-* chose otherwise.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = ServeOptions(
        host=host,
        port=port,
        state_dir=state_dir,
        port_file=port_file,
        linger_seconds=linger,
        grace_seconds=grace,
        memory_limit_bytes=memory_limit_mib * 1024 * 1024 if memory_limit_mib is not None else None,
        limits=limits,
    )
    if state_dir is None:
        typer.echo("node state: none (--ephemeral): if this node stops, the job is lost")
        raise typer.Exit(run_node_process(job=job_spec, tee=backend, options=options))
    try:
        with hold_state_dir(state_dir):
            typer.echo(f"node state: {state_dir} (sealed after every round; run this command again to resume)")
            code = run_node_process(job=job_spec, tee=backend, options=options)
    except StateDirInUse as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.IN_USE) from exc
    except OSError as exc:
        typer.echo(f"error: state directory {state_dir}: {exc.strerror or exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    raise typer.Exit(code)


@app.command(epilog=exit_status_help())
def policy(
    platform_dir: Annotated[Path, typer.Option(help="The simulated platform's directory (created if absent).")],
    out: Annotated[Path, typer.Option(help="Policy TOML to write; its root CA is written beside it.")] = Path(
        "policy.toml"
    ),
) -> None:
    """Write the data owners' policy for a node on a SIMULATED platform (INSECURE, development only).

    It pins MRENCLAVE to the simulated measurement of this installation's aggregator code and accepts quotes
    signed by this platform's test root only. Send it (and the simulation_root_ca-*.pem written beside it,
    named by the root's fingerprint) to every data owner and the model owner. Refuses to replace a policy
    for another platform at OUT. For a real enclave use the policy.toml of its release (docs/gramine.md).
    """
    try:
        written = write_simulation_policy(platform_dir, out)
    except OSError as exc:
        typer.echo(f"error: {exc.filename or out}: {exc.strerror or exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    except EnclaveFLError as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    root_file = written.parent / tomllib.loads(written.read_text())["simulation_root_ca"]
    typer.echo(f"wrote {written} and {root_file} (INSECURE: accepts the simulated platform in {platform_dir})")


@app.command(epilog=exit_status_help(ExitCode.REFUSED, *NODE_EXIT_CODES))
def agent(
    collateral_dir: Annotated[
        Path, typer.Option(help="The release's collateral directory (mounted read-only into the enclave).")
    ],
    pccs_url: Annotated[str | None, typer.Option(help="Fetch from your PCCS, e.g. https://localhost:8081/.")] = None,
    intel_pcs: Annotated[
        bool, typer.Option("--intel-pcs", help="Fetch from Intel's Provisioning Certification Service itself.")
    ] = False,
    cache_url: Annotated[
        str | None,
        typer.Option(help="Fetch from your cloud provider's PCS cache (its .../sgx/certification/v4/ URL)."),
    ] = None,
    quote: Annotated[
        Path | None,
        typer.Option(
            help="The node's log (its 'platform-quote <hex>' line) or a raw quote file of this platform "
            "(default with --run-node: the --log file)."
        ),
    ] = None,
    run_node: Annotated[
        Path | None,
        typer.Option(help="Also run the node (the build's run.sh): restart it after a crash, log its output."),
    ] = None,
    log: Annotated[Path, typer.Option(help="With --run-node: where the node's output goes.")] = Path("node.log"),
    once: Annotated[bool, typer.Option("--once", help="Fetch and write once, then exit (for cron).")] = False,
    refresh_margin_hours: Annotated[
        float, typer.Option(min=0, help="Refresh this long before the collateral's earliest nextUpdate.")
    ] = 24.0,
    refresh_hours: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="Refresh at least this often (owners refuse collateral older than 7 "
            "days by default, and a daily fetch brings a TCB recovery to them within a day).",
        ),
    ] = 24.0,
) -> None:
    """The host agent, outside the enclave: keep COLLATERAL_DIR/collateral.json fresh.

    It fetches from one collateral service: --intel-pcs (Intel's PCS), --pccs-url (a PCCS you run) or
    --cache-url (your cloud provider's cache of the PCS). The enclave makes no outbound connection; it hands this
    file out with its quote. The file is Intel-signed and verified by every data owner, so neither this agent nor
    the service is trusted: a stale or forged bundle only makes attestation fail. Runs until interrupted,
    refreshing daily and before expiry, retrying every minute after a failure. With --run-node it also carries
    the node's restart loop and log: it starts run.sh,
    copies its output to --log (where the platform quote is read from), restarts it after a crash and exits
    when the node finished its job. With --once a bundle that could not be fetched exits 4; with --run-node
    the agent exits with the node's own status.
    """
    import logging
    import signal
    import threading

    from enclavefl.host.collateral_agent import CollateralAgent, collateral_service
    from enclavefl.host.supervisor import NodeSupervisor

    quote_file = quote if quote is not None else log if run_node is not None else None
    if quote_file is None:
        typer.echo("error: --quote FILE (the node's log or a quote), or --run-node RUN_SH", err=True)
        raise typer.Exit(ExitCode.CONFIG)
    try:
        service = collateral_service(intel_pcs=intel_pcs, pccs_url=pccs_url, cache_url=cache_url)
        collateral_agent = CollateralAgent(
            service=service,
            collateral_dir=collateral_dir,
            quote_file=quote_file,
            refresh_margin_seconds=int(refresh_margin_hours * 3600),
            refresh_interval_seconds=refresh_hours * 3600,
        )
    except EnclaveFLError as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    if once:
        try:
            done = collateral_agent.refresh()
        except EnclaveFLError as exc:
            typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
            raise typer.Exit(ExitCode.REFUSED) from exc
        typer.echo(f"wrote {done.path} (expires at unix {done.expires_at})")
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    refresher = threading.Thread(
        target=collateral_agent.run, args=(stop,), kwargs={"report": typer.echo}, name="collateral", daemon=True
    )
    refresher.start()
    status = 0
    if run_node is not None:
        status = NodeSupervisor(command=[str(run_node)], log_path=log, report=typer.echo).run(stop)
        typer.echo(f"node exited with status {status}; agent stopping")
        stop.set()
    refresher.join()
    raise typer.Exit(status)
