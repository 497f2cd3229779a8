"""`enclavefl data-owner`: make enrollment keys, and train with a node once it proved itself.

torch and the owner's modules are imported inside the commands: `--help` and `keygen` run without torch.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer

from enclavefl.core.exit_codes import DATA_OWNER_RUN_EXIT_CODES, ExitCode, exit_status_help
from enclavefl.errors import (
    AttestationError,
    EnclaveFLError,
    LifetimeBudgetExceeded,
    SitePolicyRefused,
    StateDirInUse,
    StateDirUnwritable,
    TaskError,
)

app = typer.Typer(
    help=(
        "A data owner: keep your data, verify the node, send only trained weights.\n\n"
        "1. `enclavefl data-owner keygen --name alice --out keys/` and send keys/alice.pem to the model owner, "
        "who enrolls it in the job spec.\n"
        "2. Read the job spec you receive; get the node's attestation policy (policy.toml).\n"
        "3. `enclavefl data-owner run --node HOST:PORT --job job.toml --policy policy.toml --task MOD:ATTR "
        "--data alice.safetensors --key keys/alice.key --cert keys/alice.pem`."
    ),
    no_args_is_help=True,
)


@app.callback()
def _data_owner() -> None:
    """A data owner: keep your data, verify the node, send only trained weights."""


@app.command(epilog=exit_status_help())
def keygen(
    name: Annotated[str, typer.Option(help="Your name in the job spec (the certificate's common name).")],
    out: Annotated[Path, typer.Option(help="Directory for NAME.key (secret, mode 0600) and NAME.pem.")] = Path("."),
) -> None:
    """Make your signing key and the self-signed certificate the model owner enrolls in the job.

    The key never leaves your machine: you sign the node's join challenge with it. Only NAME.pem goes to the
    model owner. The model owner makes its own key the same way (`--name model-owner`) and passes its
    certificate to `job init --model-owner-cert`. Refuses to overwrite an existing key.
    """
    from enclavefl.transport.owner_tls import OwnerCredentials

    key, cert = out / f"{name}.key", out / f"{name}.pem"
    if key.exists() or cert.exists():
        typer.echo(f"error: {key} or {cert} already exists; not overwriting a key", err=True)
        raise typer.Exit(ExitCode.CONFIG)
    try:
        out.mkdir(parents=True, exist_ok=True)
        OwnerCredentials.generate(name).save(key, cert)
    except OSError as exc:
        typer.echo(f"error: {exc.filename or out}: {exc.strerror or exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    typer.echo(
        f"wrote {key} (keep it secret) and {cert}. A data owner sends {cert} to the model owner, who enrolls it "
        f"with `job init --owner {name}={cert}`; the model owner passes its own to `job init --model-owner-cert`"
    )


@app.command(epilog=exit_status_help(*DATA_OWNER_RUN_EXIT_CODES))
def run(
    node: Annotated[str, typer.Option(help="The node's HOST:PORT.")],
    job: Annotated[Path, typer.Option(help="The job spec you agreed to; the node must attest this exact job.")],
    policy: Annotated[Path, typer.Option(help="Your attestation policy (TOML): which enclave you accept.")],
    task: Annotated[str, typer.Option(help="The training Task: package.module:ATTR or path/to/file.py:ATTR.")],
    data: Annotated[
        Path,
        typer.Option(
            help="Your data: a safetensors file with tensors `x` (inputs) and `y` (targets), or any path the "
            "task's own `load_data` reads (CSV shards, an image folder, ...), streamed in mini-batches."
        ),
    ],
    key: Annotated[Path, typer.Option(help="Your private key (PEM), from `keygen`.")],
    cert: Annotated[Path, typer.Option(help="Your certificate (PEM), as enrolled in the job.")],
    name: Annotated[str | None, typer.Option(help="Your name in the job (default: the certificate's CN).")] = None,
    state: Annotated[
        Path | None,
        typer.Option(
            help="Your durable state: every receipt you signed (a restarted owner still refuses a rolled-back "
            "node), the verified receipt chain, the secret salts that open your receipt commitments and your privacy "
            "ledger. Default: $XDG_STATE_HOME/enclavefl/data-owners/<certificate fingerprint> (else "
            "~/.local/state/...), printed at start, locked per job while you run. Back it up; to move it, copy the "
            "directory and pass --state."
        ),
    ] = None,
    insecure_no_state: Annotated[
        bool,
        typer.Option(
            "--insecure-no-state",
            help="INSECURE: keep no state. A restarted owner forgets the rounds it signed, so an operator who rolls "
            "the node back can get a round released twice, which reveals an owner's exact update.",
        ),
    ] = False,
    connect_timeout: Annotated[float, typer.Option(help="Seconds to keep trying an unreachable node.")] = 120.0,
    site_policy: Annotated[
        Path | None,
        typer.Option(
            help="Your own limits on any job (TOML; `data-owner site-policy init` writes one), checked "
            "before anything is sent; its lifetime_epsilon is checked against the privacy ledger in your state."
        ),
    ] = None,
    pccs_url: Annotated[
        str | None,
        typer.Option(help="Verify the node's quote with collateral fetched from this PCCS, not the node's own."),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="Where your training runs: cpu, cuda, cuda:N, or auto (a GPU when torch sees one). Your choice, not "
            "the job's; a TorchTask only [default: where the task builds its model, the CPU].",
        ),
    ] = None,
    eval_data: Annotated[
        Path | None,
        typer.Option(
            help="Your held-out data (same forms as --data), never trained on. When the job sets evaluate_every, "
            "the model each such round starts from is evaluated on it and the figures go with your update; the "
            "node releases them only as a mean over >= K owners."
        ),
    ] = None,
) -> None:
    """Verify the node, join, and train every round until the job ends.

    Before anything is sent, the node's DCAP quote is verified against POLICY (MRENCLAVE/MRSIGNER, no debug
    enclave, current TCB) and must bind the node's TLS key, the digest of JOB and a fresh nonce. Each round you
    download the global model, train on DATA locally, upload only the weights, and check the node's signed
    receipt chain. Each round closes in two phases: the node shows the round's sealed receipt, you record it
    (in your state directory) and sign it back, and only then is the aggregate released; you never upload a round
    you signed, even after a restart. Your local training shows as a bar (on a terminal) and one line per round
    (steps, first and last loss, mean), printed here and never sent. When attestation is refused, the error class
    and message say what did not match.

    Your state (signed rounds, receipt chain, commitment salts, privacy ledger) is kept by default in
    $XDG_STATE_HOME/enclavefl/data-owners/<certificate fingerprint> (~/.local/state/... without XDG_STATE_HOME);
    the path is printed at start. One process per job may use it (a second one exits 6). Back the directory up
    with the rest of your keys; to move it, copy it and pass --state NEW_DIR.
    """
    from contextlib import nullcontext

    from enclavefl.api.data_owner import DataOwnerClient
    from enclavefl.cli.owner_progress import OwnerProgress
    from enclavefl.owner.data_owner_main import describe_report, exit_status
    from enclavefl.owner.notices import describe_enclave, describe_refusal, describe_stop
    from enclavefl.owner.preflight import load_task, on_device

    shown = OwnerProgress()  # on a terminal: a bar over each round's steps; piped: the round lines only
    live = shown.console.is_terminal
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # client.warnings() below says each once, in one line
            client = DataOwnerClient(
                node=node,
                job=job,
                policy=policy,
                key=key,
                cert=cert,
                name=name,
                state_dir=state,
                insecure_no_state=insecure_no_state,
                connect_timeout=connect_timeout,
                site_policy=site_policy,
                pccs_url=pccs_url,
                on_line=shown.line if live else typer.echo,
                on_attested=lambda v: typer.echo(f"[{client.name}] {describe_enclave(v)}"),
            )
        client.prepare(shown.on_task(on_device(load_task(task), device)), data, held_out=eval_data)
    except (EnclaveFLError, ValueError, OSError) as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    for warning in client.warnings():
        typer.echo(warning, err=True)
    try:
        with shown if live else nullcontext():
            report = client.run()
    except AttestationError as exc:
        typer.echo(
            f"[{client.name}] attestation refused, nothing was sent: {describe_refusal(exc, client.setup.policy)}",
            err=True,
        )
        raise typer.Exit(ExitCode.ATTESTATION_REFUSED) from exc
    except (SitePolicyRefused, LifetimeBudgetExceeded) as exc:
        typer.echo(
            f"[{client.name}] refused by your own limits, nothing was sent: {type(exc).__name__}: {exc}", err=True
        )
        raise typer.Exit(ExitCode.SITE_POLICY_REFUSED) from exc
    except TaskError as exc:  # the warm-up's training step failed, before the node was contacted
        typer.echo(f"[{client.name}] error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    except StateDirInUse as exc:  # this owner already runs this job from this state: nothing was sent
        typer.echo(f"[{client.name}] error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.IN_USE) from exc
    except StateDirUnwritable as exc:  # before the node was contacted
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    except EnclaveFLError as exc:
        typer.echo(f"[{client.name}] stopped: {describe_stop(exc)}", err=True)
        raise typer.Exit(ExitCode.REFUSED) from exc
    typer.echo(describe_report(client.name, report))
    raise typer.Exit(exit_status(report))


site_policy_app = typer.Typer(help="Your own limits on any job you are handed (`data-owner run --site-policy`).")
app.add_typer(site_policy_app, name="site-policy")
ledger_app = typer.Typer(help="Your lifetime privacy ledger: every job you joined and every update you sent.")
app.add_typer(ledger_app, name="ledger")


@site_policy_app.command("init", epilog=exit_status_help())
def site_policy_init(
    out: Annotated[Path, typer.Option(help="Where to write the commented site policy.")] = Path("site-policy.toml"),
) -> None:
    """Write a commented site policy with conservative limits; edit it, then pass it to `data-owner run`.

    Refuses to overwrite an existing file.
    """
    from enclavefl.owner.site_policy import DEFAULT_SITE_POLICY

    if out.exists():
        typer.echo(f"error: {out} already exists; not overwriting your site policy", err=True)
        raise typer.Exit(ExitCode.CONFIG)
    out.write_text(DEFAULT_SITE_POLICY)
    typer.echo(f"wrote {out}: review each limit, then `enclavefl data-owner run ... --site-policy {out}`")


@ledger_app.command("show", epilog=exit_status_help())
def ledger_show(
    state: Annotated[
        Path | None, typer.Option(help="Your state directory, if `data-owner run` had --state (else give --cert).")
    ] = None,
    cert: Annotated[
        Path | None, typer.Option(help="Your certificate: reads the default state directory `data-owner run` uses.")
    ] = None,
    site_policy: Annotated[
        Path | None, typer.Option(help="Site policy whose lifetime delta and accountant the total uses.")
    ] = None,
) -> None:
    """Print every job charged to your privacy ledger, its uploads, and the lifetime epsilon spent.

    A ledger or site policy that cannot be read is a configuration error (the ledger is never reset).
    """
    from rich.console import Console
    from rich.table import Table

    from enclavefl.owner.ledger import PrivacyLedger
    from enclavefl.owner.site_policy import SitePolicy
    from enclavefl.owner.state_dir import DATA_OWNER, default_state_dir

    if state is None:
        if cert is None:
            typer.echo("error: ConfigError: give --cert (your default state directory) or --state DIR", err=True)
            raise typer.Exit(ExitCode.CONFIG)
        try:
            state = default_state_dir(certificate_pem=cert.read_bytes(), role=DATA_OWNER)
        except (OSError, ValueError, EnclaveFLError) as exc:
            typer.echo(f"error: ConfigError: --cert {cert}: {exc}", err=True)
            raise typer.Exit(ExitCode.CONFIG) from exc
    if not state.is_dir():
        typer.echo(
            f"error: ConfigError: --state {state}: no such directory (the --state of `data-owner run`)", err=True
        )
        raise typer.Exit(ExitCode.CONFIG)
    try:
        site = SitePolicy.load(site_policy) if site_policy is not None else SitePolicy()
        ledger = PrivacyLedger.open(state)
        total = ledger.spent(site)
    except EnclaveFLError as exc:
        typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(ExitCode.CONFIG) from exc
    table = Table(title="privacy ledger")
    for column in ("job", "digest", "noise multiplier", "delta", "rounds charged", "uploads", "last epsilon"):
        table.add_column(column)
    for job in ledger.jobs:
        last = f"{job.uploads[-1][1]:.4g}" if job.uploads else "-"
        table.add_row(
            job.name,
            job.digest[:16],
            f"{job.noise_multiplier:g}",
            f"{job.delta:g}",
            str(job.rounds),
            str(len(job.uploads)),
            last,
        )
    console = Console(width=max(100, Console().width))
    console.print(f"ledger file: {ledger.path}", soft_wrap=True, highlight=False)  # one line a user can copy
    console.print(table)
    budget = f" of {site.lifetime_epsilon:g}" if site.lifetime_epsilon is not None else ""
    console.print(
        f"lifetime epsilon spent: {total:.4g}{budget} at delta {site.lifetime_delta:g} "
        f"({site.lifetime_accountant.upper()}, every job charged in full)"
    )
