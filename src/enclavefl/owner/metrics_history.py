"""What the model owner learns about each released round, as records: JSON lines, CSV, and series for curves.

    record = RoundRecord.from_summary(summary, central={"accuracy": 0.91})   # a node's RoundSummary + own eval
    print(record.to_json())                                                   # `job watch --json`: one line a round
    history = read_history(Path("rounds.jsonl"))                              # `job plot`, `job report`
    series(history)    # {"train/train_loss": [(1, 0.52), (2, 0.31)], "central/accuracy": [...], ...}

Three groups of metrics, named apart everywhere: `train` (the owners' training metrics the node released, means
over >= K owners), `federated` (the owners' evaluation on their held-out data, released under the same rule) and
`central` (the model owner's own evaluation of the released model, Flower's `evaluate_fn`). A networked job's owners
evaluate the model a round starts from, so round r's record carries their figures on round r - 1's model:
`federated_round` says which model they describe, and curves and loggers place them there.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from enclavefl.core.messages import RoundSummary
from enclavefl.errors import ConfigError

GROUPS: Final = ("train", "federated", "central")


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundRecord:
    round: int
    contributions: int
    global_model_sha256: str
    train: Mapping[str, float] = field(default_factory=dict)
    federated: Mapping[str, float] = field(default_factory=dict)
    central: Mapping[str, float] = field(default_factory=dict)
    rejected: Mapping[str, int] = field(default_factory=dict)
    federated_round: int | None = None  # the round whose released model `federated` describes; None: this one

    @classmethod
    def from_summary(
        cls,
        summary: RoundSummary,
        *,
        federated: Mapping[str, float] | None = None,
        central: Mapping[str, float] | None = None,
    ) -> RoundRecord:
        if federated is None and summary.evaluation:  # the owners' figures on the model the round started from
            return cls(
                round=summary.round,
                contributions=summary.contributions,
                global_model_sha256=summary.global_model_sha256,
                train=dict(summary.metrics),
                federated=dict(summary.evaluation),
                central=dict(central or {}),
                rejected=dict(summary.rejected),
                federated_round=summary.round - 1,
            )
        return cls(
            round=summary.round,
            contributions=summary.contributions,
            global_model_sha256=summary.global_model_sha256,
            train=dict(summary.metrics),
            federated=dict(federated or {}),
            central=dict(central or {}),
            rejected=dict(summary.rejected),
        )

    def metrics(self) -> dict[str, float]:
        """Every metric as `group/name`."""
        return {f"{g}/{k}": float(v) for g in GROUPS for k, v in getattr(self, g).items()}

    def step_of(self, name: str) -> int:
        """The round a `group/name` metric describes (its step in curves and loggers)."""
        if name.startswith("federated/") and self.federated_round is not None:
            return self.federated_round
        return self.round

    def to_json(self) -> str:
        body = {
            "round": self.round,
            "contributions": self.contributions,
            "global_model_sha256": self.global_model_sha256,
            **{g: {k: _finite_or_none(v) for k, v in sorted(getattr(self, g).items())} for g in GROUPS},
            "rejected": dict(sorted(self.rejected.items())),
        }
        if self.federated_round is not None:
            body["federated_round"] = self.federated_round
        return json.dumps(body, sort_keys=False, allow_nan=False)

    @classmethod
    def from_json(cls, text: str, *, where: str = "record") -> RoundRecord:
        try:
            raw: Any = json.loads(text)
            return cls(
                round=int(raw["round"]),
                contributions=int(raw["contributions"]),
                global_model_sha256=str(raw["global_model_sha256"]),
                **{g: _floats(raw.get(g, {})) for g in GROUPS},
                rejected={str(k): int(v) for k, v in dict(raw.get("rejected", {})).items()},
                federated_round=None if raw.get("federated_round") is None else int(raw["federated_round"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{where}: not a round record of `job watch --json`: {type(exc).__name__}: {exc}"
            ) from None


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _floats(raw: object) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise TypeError(f"expected an object of metrics, got {type(raw).__name__}")
    return {str(k): float("nan") if v is None else float(v) for k, v in raw.items()}


def read_history(path: Path) -> tuple[RoundRecord, ...]:
    """The records of a `job watch --json` file (one JSON object a line); ConfigError names the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--metrics {path}: cannot read it: {exc}") from None
    records = [
        RoundRecord.from_json(line, where=f"--metrics {path} line {number}")
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    return latest_per_round(records)


def latest_per_round(records: Iterable[RoundRecord]) -> tuple[RoundRecord, ...]:
    """One record per round (a resumed watch may repeat one: the later wins), in round order."""
    by_round = {r.round: r for r in records}
    return tuple(by_round[k] for k in sorted(by_round))


def series(history: Sequence[RoundRecord]) -> dict[str, list[tuple[int, float]]]:
    """`group/name` -> [(round, value)] for every finite value, in round order (owners' evaluation figures at the
    round whose model they describe)."""
    found: dict[str, list[tuple[int, float]]] = {}
    for record in history:
        for name, value in record.metrics().items():
            if math.isfinite(value):
                found.setdefault(name, []).append((record.step_of(name), value))
    return {name: sorted(points) for name, points in sorted(found.items())}


def csv_header(names: Sequence[str]) -> str:
    return _csv_line(["round", "contributions", "global_model_sha256", *names])


def csv_row(record: RoundRecord, names: Sequence[str]) -> str:
    values = record.metrics()
    cells = [str(record.round), str(record.contributions), record.global_model_sha256]
    cells += [repr(values[n]) if n in values else "" for n in names]
    return _csv_line(cells)


def _csv_line(cells: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    return out.getvalue()
