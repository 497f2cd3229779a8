"""A Flower `ClientApp` (`@app.train()` / `@app.evaluate()` over Messages), unchanged, as an enclavefl task.

    from pytorchexample.client_app import app          # Flower's quickstart-pytorch, as written
    from pytorchexample.task import Net

    task = FlowerClientAppTask(app, model_fn=Net, run_config={"batch-size": 32})
    enclavefl.simulate(task, {"alice": {"partition-id": 0, "num-partitions": 2}, ...})

Each round the app's train function receives a Message whose content holds the round's global model as an
`ArrayRecord` ("arrays", the job's tensors by name) and the round's settings as a `ConfigRecord` ("config": `lr`,
`local_steps` or `local_epochs`, `batch_size`, `seed`: those the job sets), and a Context whose `node_config` is
the data owner's data (a mapping: `partition-id`, a path, ...) and whose `run_config` is `run_config` plus
`local-epochs`, `batch-size` and `learning-rate` from the job (the names Flower's examples read). Its reply's
"arrays" is the update (refused unless it has exactly the job's tensors) and its "metrics" `MetricRecord` gives
`num-examples` and `train_loss`. Evaluation sends "arrays" alone; `eval_loss` (or `loss`) is the loss and the
other metrics are kept. No Flower server, SuperLink or SuperNode runs: enclavefl's node aggregates.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from enclavefl.core.job import TrainConfig
from enclavefl.errors import TaskError
from enclavefl.task.api import EvalResult
from enclavefl.task.flower import FlowerConfig, flower_config
from enclavefl.task.numpy_task import NamedArrays, NumpyFitResult, NumpyTaskAdapter, check_same_layout

LOSS_KEYS = ("train_loss", "loss")
INSTRUCTION_TTL_SECONDS = 24 * 3600.0  # Flower's reply must fit in it; local training has no deadline of Flower's
EVAL_LOSS_KEYS = ("eval_loss", "loss")


class ClientAppNumpyTask:
    """The NumpyTask calling a ClientApp; FlowerClientAppTask is the Task users name."""

    def __init__(self, app: Any, model_fn: Callable[[], torch.nn.Module], run_config: Mapping[str, Any]) -> None:
        self.app = app
        self.model_fn = model_fn
        self.run_config = dict(run_config)

    def initial_weights(self) -> NamedArrays:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model_fn().state_dict().items()}

    def fit(self, weights: Mapping[str, NDArray[Any]], data: Any, config: TrainConfig) -> NumpyFitResult:
        from flwr.app import ConfigRecord

        reply = self._send("train", weights, data, config, ConfigRecord(flower_config(config)))
        if "arrays" not in reply:
            raise TaskError("the ClientApp's train reply has no 'arrays' ArrayRecord: no update to send")
        new = _numpy(reply["arrays"])
        check_same_layout(dict(weights), new, "the ClientApp's train")
        metrics = _metrics(reply)
        loss = next((metrics[k] for k in LOSS_KEYS if k in metrics), None)
        return NumpyFitResult(
            weights=new,
            num_examples=int(metrics.get("num-examples", 1)),
            losses=(loss,) if loss is not None else (),
            metrics={k: v for k, v in metrics.items() if k != "num-examples"},
        )

    def evaluate(self, weights: Mapping[str, NDArray[Any]], data: Any) -> EvalResult:
        metrics = _metrics(self._send("evaluate", weights, data, None, None))
        key = next((k for k in EVAL_LOSS_KEYS if k in metrics), None)
        if key is None:
            raise TaskError("the ClientApp's evaluate reply has no 'eval_loss' or 'loss' metric")
        rest = {k: v for k, v in metrics.items() if k not in (key, "num-examples")}
        return EvalResult(num_examples=int(metrics.get("num-examples", 1)), loss=metrics[key], metrics=rest)

    def _send(
        self, kind: str, weights: Mapping[str, NDArray[Any]], data: Any, config: TrainConfig | None, record: Any
    ) -> Any:
        from flwr.app import ArrayRecord, Context, Message, Metadata, RecordDict

        arrays = ArrayRecord(OrderedDict((k, torch.from_numpy(np.array(v, copy=True))) for k, v in weights.items()))
        content = RecordDict({"arrays": arrays, "config": record} if record is not None else {"arrays": arrays})
        context = Context(
            run_id=0, node_id=0, node_config=node_config(data), state=RecordDict(), run_config=self._run(config)
        )
        try:
            reply = self.app(Message(content=content, metadata=_metadata(Metadata, kind)), context)
        except Exception as exc:  # the user's Flower code
            raise TaskError(f"the ClientApp's {kind} raised {type(exc).__name__}: {exc}") from None
        if reply.has_error():
            raise TaskError(f"the ClientApp's {kind} replied with an error: {reply.error.reason}")
        return reply.content

    def _run(self, config: TrainConfig | None) -> FlowerConfig:
        run: FlowerConfig = dict(self.run_config)
        if config is not None:
            run.setdefault("local-epochs", config.local_epochs or 1)
            run.setdefault("learning-rate", config.lr)
            if config.batch_size is not None:
                run["batch-size"] = config.batch_size
        return run


class FlowerClientAppTask(NumpyTaskAdapter):
    """A `Task` running Flower's `ClientApp` `app`; `model_fn()` builds its model (the job's tensor names)."""

    def __init__(
        self, app: Any, *, model_fn: Callable[[], torch.nn.Module], run_config: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(ClientAppNumpyTask(app, model_fn, run_config or {}))


def node_config(data: Any) -> FlowerConfig:
    """The data owner's data as Flower's node_config: a mapping as it is, anything else as {"data": str(it)}."""
    if isinstance(data, Mapping):
        return {str(k): v for k, v in data.items()}
    return {"data": str(data)}


def _metadata(metadata_class: Any, kind: str) -> Any:
    """What a SuperNode's instruction carries (from the SuperLink); the app's reply copies it (`reply_to=msg`)."""
    return metadata_class(
        run_id=0,
        message_id=secrets.token_hex(16),
        src_node_id=0,
        dst_node_id=0,
        reply_to_message_id="",
        group_id="",
        created_at=time.time(),
        ttl=INSTRUCTION_TTL_SECONDS,
        message_type=kind,
    )


def _numpy(record: Any) -> NamedArrays:
    return {k: v.detach().cpu().numpy() for k, v in record.to_torch_state_dict().items()}


def _metrics(content: Any) -> dict[str, float]:
    if "metrics" not in content:
        return {}
    return {str(k): float(v) for k, v in content["metrics"].items() if isinstance(v, int | float)}
