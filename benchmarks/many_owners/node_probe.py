"""Where the node's memory goes while many owners are connected: bench_many_owners.py's probe in the node's process.

    probe = NodeProbe.install()      # before the node serves: counts the bytes of every answer, per RPC
    probe.sample()                   # RSS now and at most since the last sample, glibc's heap, Python's share
    memory_breakdown(idle, start, end, releases, tail, owners, rounds)   # the parent: per owner, from the samples

Sampled every 20 ms by a thread (RSS is a moving figure: the one read at a release misses what a seal held a
second earlier). Per sample: VmRSS and the highest VmRSS since the last one; glibc's heap (`mallinfo2`: bytes
in use, bytes freed but kept, bytes in mmapped blocks); with BENCH_TRACEMALLOC=1, Python's own allocations
(tracemalloc; everything glibc holds beyond them is native: gRPC C-core with its BoringSSL, protobuf's upb
arenas, `cryptography`'s OpenSSL), and at the highest RSS of the run the Python lines that held the most.
Answers are counted as gRPC serializes them (bytes and messages per RPC): the node's own code is unchanged.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

TRACEMALLOC = os.environ.get("BENCH_TRACEMALLOC") == "1"


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _mallinfo() -> dict[str, int]:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):  # not glibc: no heap figures
        return {}
    return {
        "heap_in_use_kib": info.uordblks // 1024,
        "heap_free_kept_kib": info.fordblks // 1024,
        "mmapped_kib": info.hblkhd // 1024,
    }


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


class NodeProbe:
    """Answer bytes per RPC, and the node's memory sampled by a thread of its own."""

    def __init__(self) -> None:
        self.answer_bytes: Counter[str] = Counter()
        self.answers: Counter[str] = Counter()
        self.request_bytes: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._peak_kib = 0  # highest RSS since the last sample() (the sampler thread raises it)
        self._run_peak_kib = 0
        self._at_peak: dict[str, object] = {}
        self._top: list[str] = []

    @classmethod
    def install(cls) -> NodeProbe:
        """Count the answers of the node's gRPC server (wraps its serializers) and start sampling."""
        from enclavefl.transport import grpc_server

        probe = cls()
        handlers = grpc_server._handlers

        def counted(servicer: Any) -> tuple[str, dict[str, Any]]:
            name, found = handlers(servicer)
            return name, {method: probe._wrap(method, handler) for method, handler in found.items()}

        grpc_server._handlers = counted  # type: ignore[assignment]
        if TRACEMALLOC:
            tracemalloc.start(8)
        threading.Thread(target=probe._watch, name="bench-probe", daemon=True).start()
        return probe

    def _wrap(self, method: str, handler: Any) -> Any:
        serialize: Callable[[Any], bytes] = handler.response_serializer
        parse: Callable[[bytes], Any] = handler.request_deserializer

        def serialized(message: Any) -> bytes:
            data = serialize(message)
            with self._lock:
                self.answer_bytes[method] += len(data)
                self.answers[method] += 1
            return data

        def parsed(data: bytes) -> Any:
            with self._lock:
                self.request_bytes[method] += len(data)
            return parse(data)

        return handler._replace(response_serializer=serialized, request_deserializer=parsed)

    def _watch(self) -> None:
        while True:
            rss = _rss_kib()
            with self._lock:
                self._peak_kib = max(self._peak_kib, rss)
                new_high = rss > self._run_peak_kib + 1024
                self._run_peak_kib = max(self._run_peak_kib, rss)
            if new_high:  # the run's highest RSS so far: what holds it
                self._at_peak = {"rss_kib": rss, **_mallinfo(), **self._python()}
                if TRACEMALLOC:
                    stats = tracemalloc.take_snapshot().statistics("traceback")[:12]
                    self._top = [
                        f"{s.size >> 10} KiB in {s.count} blocks: {' <- '.join(_short(s.traceback))}" for s in stats
                    ]
            time.sleep(0.02)

    @staticmethod
    def _python() -> dict[str, int]:
        if not TRACEMALLOC:
            return {}
        current, peak = tracemalloc.get_traced_memory()
        return {"python_kib": current >> 10, "python_peak_kib": peak >> 10}

    def sample(self) -> dict[str, object]:
        """Now, and the highest RSS since the last call; answer and request bytes so far, per RPC."""
        rss = _rss_kib()
        with self._lock:
            peak, self._peak_kib = max(self._peak_kib, rss), rss
            answers = {m: [self.answers[m], self.answer_bytes[m]] for m in self.answers}
            requests = dict(self.request_bytes)
        return {
            "rss_kib": rss,
            "peak_rss_kib": peak,
            **_mallinfo(),
            **self._python(),
            "answers": answers,
            "request_bytes": requests,
            "at_run_peak": self._at_peak,
            "smaps": _smaps(),
        }

    def top_lines(self) -> list[str]:
        """The Python allocations (by traceback) held at the run's highest RSS (BENCH_TRACEMALLOC=1 only)."""
        return self._top


HEAP = ("heap_in_use_kib", "heap_free_kept_kib")


def memory_breakdown(
    idle: dict[str, Any],
    start: dict[str, Any],
    end: dict[str, Any],
    releases: list[dict[str, Any]],
    tail: dict[str, Any],
    owners: int,
    counted: int,
) -> dict[str, object]:
    """The probe's figures (many_owners/node_probe.py): the highest RSS per owner, what glibc's heap and Python
    held at the run's highest RSS (growth over idle, per owner), and the answer bytes per owner per round by RPC."""
    before, at_peak = idle["probe"], tail.get("end", end["probe"])["at_run_peak"]
    grown = {k: round((v - before.get(k, 0)) / owners, 1) for k, v in at_peak.items() if isinstance(v, int)}
    answers = {
        method: round((n[1] - start["probe"]["answers"].get(method, [0, 0])[1]) / (owners * counted) / 1024, 2)
        for method, n in end["probe"]["answers"].items()
    }
    return {
        "peak_rss_kib_per_owner": (max(r["probe"]["peak_rss_kib"] for r in releases) - idle["rss_kib"]) / owners,
        "at_peak_kib_per_owner": grown,
        "answer_kib_per_owner_round": {k: v for k, v in sorted(answers.items()) if v},
        "by_release_kib_per_owner": [  # rss, highest rss since the previous release, glibc in use, freed but kept
            [round((r["probe"][k] - before.get(k, 0)) / owners) for k in ("rss_kib", "peak_rss_kib", *HEAP)]
            for r in releases
        ],
        "python_top_at_peak": tail.get("top", []),
    }


def _short(traceback: tracemalloc.Traceback) -> list[str]:
    return [f"{Path(f.filename).name}:{f.lineno}" for f in list(traceback)[:4]]


def _smaps() -> dict[str, int]:
    try:
        lines = Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]
    except OSError:
        return {}
    wanted = {"Rss", "Anonymous", "Private_Dirty", "Shared_Clean"}
    return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in lines) if k in wanted}
