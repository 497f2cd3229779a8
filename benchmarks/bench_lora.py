"""Federated LoRA against the whole model travelling: bytes per round, round time, peak memory of node and owners.

    .venv/bin/python benchmarks/bench_lora.py                         # both presets (needs 'enclavefl[llm]')
    .venv/bin/python benchmarks/bench_lora.py --preset example --repeats 3
    .venv/bin/python benchmarks/bench_lora.py --preset big --repeats 1

Two models of one architecture (transformers' Llama, randomly initialised: quality is not measured here, see
examples/lora): `example` is examples/lora's full-size configuration (4 MiB), `big` a wider and deeper one of
547 MiB (574 MB). For each, the same job runs twice, interleaved `--repeats` times: `lora` (PeftAdapters, LoRA r=8 on
the attention projections as in examples/lora/task.py: only the adapters travel; the job names the base by digest)
and `full` (the same model, every tensor trains and travels). Both use SGD, so the owners' optimizer state is the
same (none) and the difference is what travels.

Every party is its own process on loopback with TLS (demos/process_federation.py): the node in a simulated enclave,
three data owners (`python -m enclavefl.owner.data_owner_main`, each loading the base model from disk), this process
the model owner. Reported per variant (medians over the repeats):
- bytes per round: each owner downloads the global model and uploads its update, both safetensors of the model
  schema: 2 x owners x payload (TLS and gRPC framing aside).
- round time: the model owner's time between two released rounds (rounds 2.., median), and round 1.
- node: RSS once every owner has attested and joined (idle), and its peak (VmHWM); growth = peak - idle.
- owners: the largest owner's peak RSS (VmHWM): the base model, the optimizer's gradients, activations.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch
from bench_federation import MIB, RssSampler

from enclavefl.api.simulation import simulation_job
from enclavefl.core.job import TrainConfig
from enclavefl.core.jobfile import read_initial_model
from enclavefl.core.torch_adapter import weights_from_module
from enclavefl.demos.process_federation import (
    ProcessGroup,
    data_owner_command,
    model_owner_session,
    node_command,
    wait_for_address,
    write_federation_files,
)
from enclavefl.owner.preflight import load_task

OWNERS = ("statements", "expressions", "datamodel")
TASK_FILE = '''"""bench_lora's tasks: LoRA adapters over the base model on disk (LORA), or the whole model (FULL)."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
from peft import LoraConfig
from transformers import LlamaForCausalLM

from enclavefl import PeftAdapters, TorchTask, causal_lm_loss


def base():
    return LlamaForCausalLM.from_pretrained({base!r}, local_files_only=True)


LORA_CONFIG = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
LORA = TorchTask(model_factory=PeftAdapters(base_model=base, config=LORA_CONFIG, base_name="bench-base"),
                 loss_fn=causal_lm_loss)
FULL = TorchTask(model_factory=base, loss_fn=causal_lm_loss)
'''


@dataclass(frozen=True, slots=True, kw_only=True)
class Preset:
    vocab: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    length: int  # tokens per block
    blocks: int  # per owner
    batch: int
    local_steps: int
    rounds: int
    sample_seconds: float


PRESETS = {
    "example": Preset(
        vocab=2048,
        hidden=128,
        layers=4,
        heads=4,
        intermediate=352,
        length=64,
        blocks=256,
        batch=16,
        local_steps=10,
        rounds=3,
        sample_seconds=0.01,
    ),
    "big": Preset(
        vocab=2048,
        hidden=1024,
        layers=11,
        heads=16,
        intermediate=2816,
        length=32,
        blocks=16,
        batch=2,
        local_steps=1,
        rounds=2,
        sample_seconds=0.02,
    ),
}


def write_base(directory: Path, preset: Preset) -> int:
    """A randomly initialised Llama of the preset's size, as `save_pretrained` writes it; its state_dict bytes."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=preset.vocab,
        hidden_size=preset.hidden,
        intermediate_size=preset.intermediate,
        num_hidden_layers=preset.layers,
        num_attention_heads=preset.heads,
        num_key_value_heads=preset.heads,
        max_position_embeddings=preset.length,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(directory)
    return sum(p.numel() * p.element_size() for p in model.parameters())


def owner_datasets(preset: Preset) -> dict[str, dict[str, object]]:
    generator = torch.Generator().manual_seed(1)
    out: dict[str, dict[str, object]] = {}
    for owner in OWNERS:
        tokens = torch.randint(0, preset.vocab, (preset.blocks, preset.length + 1), generator=generator)
        out[owner] = {"x": tokens[:, :-1].numpy(), "y": tokens[:, 1:].numpy()}
    return out


def run_once(workdir: Path, task_file: Path, variant: str, preset: Preset) -> dict[str, float]:
    task = load_task(f"{task_file}:{variant.upper()}")
    torch.manual_seed(0)
    model = task.create_model()
    initial = weights_from_module(model)
    base = getattr(model, "frozen_base", None)
    del model
    train = TrainConfig(local_steps=preset.local_steps, batch_size=preset.batch, lr=1e-3)
    job = simulation_job(
        initial, list(OWNERS), rounds=preset.rounds, train=train, base_model=base, name=f"bench-lora-{variant}"
    )
    job = dataclasses.replace(job, round_deadline_seconds=1800.0)
    files = write_federation_files(workdir / variant, job=job, initial=initial, datasets=owner_datasets(preset))
    payload = files.initial_model.stat().st_size  # the canonical safetensors bytes every transfer carries
    del initial
    sampler = RssSampler(interval=preset.sample_seconds).start()
    arrivals: list[float] = []
    with ProcessGroup() as group:
        node = group.start("node", node_command(files, port_file=files.directory / "node.addr"))
        sampler.watch("node", node.popen.pid)
        address = wait_for_address(files.directory / "node.addr", node)
        owners = []
        for name in OWNERS:
            child = group.start(
                name, data_owner_command(files, name, address, task=f"{task_file}:{variant.upper()}", light=True)
            )
            sampler.watch(name, child.popen.pid)
            owners.append(child)
        session = model_owner_session(files, address)
        while not all(any("attested" in line for line in child.lines) for child in owners):
            if group.failed():
                raise SystemExit(f"{group.failed()[0].name} failed{group.failed()[0].tail()}")
            time.sleep(0.05)
        time.sleep(1.0)
        idle = sampler.sample("node")
        assert idle is not None, "the node exited before it was measured"
        try:
            submitted = time.perf_counter()
            session.submit_initial_model(read_initial_model(files.initial_model))
            summaries = []
            for summary in session.watch():
                arrivals.append(time.perf_counter())
                summaries.append(summary)
        finally:
            session.close()
        # The owners exit once they saw the end; the node is stopped here rather than asked for the final model
        # (not measured, and `node serve` stops ~1 s after it starts handing out the final model, which can cut
        # a download of hundreds of MB short on a busy machine).
        for owner in owners:
            owner.wait(300.0)
        end = sampler.sample("node")
        failed = group.failed()
        if failed:
            raise SystemExit(f"{failed[0].name} failed{failed[0].tail()}")
    sampler.stop()
    if len(summaries) != preset.rounds or any(s.contributions != len(OWNERS) or s.rejected for s in summaries):
        raise SystemExit(f"unexpected rounds: {[(s.round, s.contributions, dict(s.rejected)) for s in summaries]}")
    node_hwm = max(sampler.hwm.get("node", 0), end[1] if end else 0)
    rounds = [later - earlier for earlier, later in zip([submitted, *arrivals], arrivals, strict=False)]
    return {
        "payload_bytes": float(payload),
        "bytes_per_round": 2.0 * len(OWNERS) * payload,
        "round_1_s": rounds[0],
        "round_s": statistics.median(rounds[1:]) if len(rounds) > 1 else rounds[0],
        "node_idle_mib": idle[0] / MIB,
        "node_peak_mib": node_hwm / MIB,
        "node_growth_mib": (node_hwm - idle[0]) / MIB,
        "owner_peak_mib": max(sampler.hwm.get(name, 0) for name in OWNERS) / MIB,
    }


def run_preset(name: str, preset: Preset, repeats: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix=f"bench-lora-{name}-") as tmp:
        workdir = Path(tmp)
        base_bytes = write_base(workdir / "base", preset)
        task_file = workdir / "tasks.py"
        task_file.write_text(TASK_FILE.format(base=str(workdir / "base")))
        print(
            f"\n== {name}: Llama {preset.layers} layers x width {preset.hidden}, base model {base_bytes / MIB:.1f} "
            f"MiB; {len(OWNERS)} owners x {preset.rounds} rounds x {preset.local_steps} local steps (batch "
            f"{preset.batch} x {preset.length} tokens); load {load()}"
        )
        results: dict[str, list[dict[str, float]]] = {"lora": [], "full": []}
        for i in range(repeats):
            for variant in ("lora", "full") if i % 2 == 0 else ("full", "lora"):  # interleaved
                started = time.perf_counter()
                results[variant].append(run_once(workdir / f"r{i}", task_file, variant, preset))
                print(f"  {variant} run {i + 1}: {time.perf_counter() - started:.0f} s, load {load()}", flush=True)
        medians = {v: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for v, runs in results.items()}
        report(name, base_bytes, medians)
        return medians


def report(name: str, base_bytes: int, medians: dict[str, dict[str, float]]) -> None:
    lora, full = medians["lora"], medians["full"]
    rows = [
        ("payload per transfer", "payload_bytes", size),
        ("bytes per round (all owners)", "bytes_per_round", size),
        ("round time, median (s)", "round_s", lambda v: f"{v:.2f}"),
        ("round 1 (s)", "round_1_s", lambda v: f"{v:.2f}"),
        ("node idle RSS (MiB)", "node_idle_mib", lambda v: f"{v:.0f}"),
        ("node peak RSS (MiB)", "node_peak_mib", lambda v: f"{v:.0f}"),
        ("node growth (MiB)", "node_growth_mib", lambda v: f"{v:.1f}"),
        ("largest owner peak RSS (MiB)", "owner_peak_mib", lambda v: f"{v:.0f}"),
    ]
    print(f"\n{name} (base model {base_bytes / MIB:.1f} MiB)   {'lora':>14} {'full model':>14} {'lora / full':>12}")
    for label, key, fmt in rows:
        ratio = lora[key] / full[key] if full[key] else float("nan")
        print(f"{label:34} {fmt(lora[key]):>14} {fmt(full[key]):>14} {ratio:12.4f}")


def size(nbytes: float) -> str:
    return f"{nbytes / 1024:,.1f} KiB" if nbytes < MIB else f"{nbytes / MIB:,.1f} MiB"


def load() -> str:
    """The load averages `uptime` prints (how busy the shared machine was)."""
    out = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    return out.split("load average:")[-1].strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=[*sorted(PRESETS), "all"], default="all")
    parser.add_argument("--repeats", type=int, help="interleaved runs per variant (default: 3 example, 1 big)")
    args = parser.parse_args(argv)
    for name in sorted(PRESETS) if args.preset == "all" else [args.preset]:
        run_preset(name, PRESETS[name], args.repeats or (1 if name == "big" else 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
