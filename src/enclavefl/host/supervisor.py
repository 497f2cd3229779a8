"""The host's restart loop and log shipping for the node process (run.sh, i.e. `gramine-sgx aggregator`).

    supervisor = NodeSupervisor(command=["./run.sh"], log_path=Path("node.log"))
    supervisor.run(stop)      # start, copy every output line to node.log, restart after a crash

Outside the enclave and untrusted, like the collateral agent it runs beside: the log is where the node's
"platform-quote" line comes from (so the agent can fetch collateral for it), and restarting is something the
host can always do or refuse anyway. A node that exits 0 finished its job and is not restarted; any other exit
is restarted after a delay that doubles up to a minute, so a node that cannot start does not spin.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)
FIRST_RESTART_DELAY: Final = 1.0
MAX_RESTART_DELAY: Final = 60.0
STOP_GRACE_SECONDS: Final = 30.0  # SIGTERM reaches the enclave (sys.enable_sigterm_injection): it stops cleanly


class NodeSupervisor:
    def __init__(
        self,
        *,
        command: Sequence[str],
        log_path: Path,
        report: Callable[[str], None] = log.info,
        first_delay: float = FIRST_RESTART_DELAY,
        max_delay: float = MAX_RESTART_DELAY,
    ) -> None:
        self.command = list(command)
        self.log_path = log_path
        self._report = report
        self._first_delay = first_delay
        self._max_delay = max_delay
        self.exit_codes: list[int] = []

    def run(self, stop: threading.Event) -> int:
        """Run the node until it exits 0 or `stop` is set; returns its last exit status."""
        delay = self._first_delay
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            code = self._run_once(stop)
            self.exit_codes.append(code)
            if code == 0 or stop.is_set():
                return code
            self._report(f"node exited with status {code}; restarting in {delay:g} s")
            if stop.wait(delay):
                return code
            delay = min(delay * 2, self._max_delay)

    def _run_once(self, stop: threading.Event) -> int:
        with open(self.log_path, "a", encoding="utf-8") as sink:
            process = subprocess.Popen(  # noqa: S603 - the operator's own run.sh
                self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
            )
            watcher = threading.Thread(target=self._stop_on_request, args=(process, stop), daemon=True)
            watcher.start()
            assert process.stdout is not None
            for line in process.stdout:
                sink.write(line)
                sink.flush()  # the agent reads the platform-quote line from here while the node runs
            return process.wait()

    def _stop_on_request(self, process: subprocess.Popen[str], stop: threading.Event) -> None:
        while process.poll() is None:
            if stop.wait(0.2):
                process.terminate()
                try:
                    process.wait(STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                return
