"""Flower 1.42's Ray simulation of the workload (benchmarks/simulation/workload.py); run by bench_simulation.py with
the Python of its own virtualenv (flwr[simulation], torch, psutil), never the project's.

    python flower_side.py --owners 1000 --per-round 20 --rounds 50 --out flower.json

Prints nothing that matters; writes the JSON the benchmark reads: per-round wall times (between the server's
evaluations, which Flower runs after each round's aggregation), the final model's held-out loss, peak memory.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import itertools

import torch
from flwr.client import ClientApp, NumPyClient
from flwr.common import Context, ndarrays_to_parameters
from flwr.server import ServerApp, ServerAppComponents, ServerConfig
from flwr.server.strategy import FedAvg
from flwr.simulation import run_simulation
from workload import MemorySampler, make_model, owner_data, test_loss, train


def get_weights(model: torch.nn.Module) -> list:
    return [v.detach().cpu().numpy().copy() for v in model.state_dict().values()]


def set_weights(model: torch.nn.Module, weights: list) -> None:
    keys = list(model.state_dict())
    model.load_state_dict({k: torch.from_numpy(w.copy()) for k, w in zip(keys, weights, strict=True)})


class Owner(NumPyClient):
    def __init__(self, index: int) -> None:
        self.index = index

    def fit(self, parameters, config):  # type: ignore[no-untyped-def]
        model = make_model()
        set_weights(model, parameters)
        seed = hash((self.index, int(config.get("round", 0)))) & 0x7FFFFFFF
        examples, loss = train(model, owner_data(self.index), seed=seed)
        return get_weights(model), examples, {"train_loss": loss}


def client_fn(context: Context):  # type: ignore[no-untyped-def]
    return Owner(int(context.node_config["partition-id"])).to_client()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--owners", type=int, required=True)
    parser.add_argument("--per-round", type=int, required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH", "")])
    logging.getLogger("flwr").setLevel(logging.WARNING)
    torch.manual_seed(0)
    initial = get_weights(make_model())
    stamps: list[float] = []
    final: dict[str, float] = {}

    def evaluate(server_round, parameters, config):  # type: ignore[no-untyped-def]
        stamps.append(time.monotonic())
        if server_round == args.rounds:
            model = make_model()
            set_weights(model, parameters)
            final["loss"] = test_loss(model)
        return None

    def server_fn(context: Context) -> ServerAppComponents:
        strategy = FedAvg(
            fraction_fit=args.per_round / args.owners,
            min_fit_clients=args.per_round,
            fraction_evaluate=0.0,
            min_evaluate_clients=0,
            min_available_clients=args.owners,
            initial_parameters=ndarrays_to_parameters(initial),
            evaluate_fn=evaluate,
            on_fit_config_fn=lambda r: {"round": r},
        )
        return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=args.rounds))

    started = time.monotonic()
    with MemorySampler() as memory:
        run_simulation(
            server_app=ServerApp(server_fn=server_fn),
            client_app=ClientApp(client_fn=client_fn),
            num_supernodes=args.owners,
            backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}, "init_args": {"num_cpus": args.cpus}},
        )
    wall = time.monotonic() - started
    rounds = [b - a for a, b in itertools.pairwise(stamps)][
        1:
    ]  # stamps[0]: round 0's evaluation; then round 1 (workers start)
    args.out.write_text(
        json.dumps(
            {
                "round_seconds": rounds,
                "wall_seconds": wall,
                "final_loss": final.get("loss"),
                "driver_mib": memory.peaks.driver_mib,
                "workers_mib": memory.peaks.workers_mib,
            }
        )
    )


if __name__ == "__main__":
    main()
