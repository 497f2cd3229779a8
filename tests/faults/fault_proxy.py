"""A TCP proxy between a data owner and the node: delays segments, cuts one stream, or acts as the operator.

The operator's powers in the rollback and fork tests: `block()` drops the owner's connections and refuses new
ones (the owner's reconnect loop keeps trying), `unblock()` lets it through again, `retarget(port)` sends it to
another node process from then on.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from fault_harness import free_port


class FaultyProxy:
    """Forwards 127.0.0.1:port to `target`; `delay` seconds per forwarded segment; `arm_cut(n)` cuts one connection
    once it has carried n more bytes towards the node (an upload truncated mid-stream)."""

    def __init__(self, target_port: int, *, delay: float = 0.0) -> None:
        self.target_port = target_port
        self.delay = delay
        self.port = free_port()
        self.cuts = 0
        self._cut_after: int | None = None
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closing = False
        self._blocked = False
        self._active: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm_cut(self, after_bytes: int) -> None:
        with self._lock:
            self._cut_after = after_bytes

    def block(self) -> None:
        """Cut every connection now and refuse new ones until `unblock()`."""
        with self._lock:
            self._blocked = True
        self._drop_active()

    def unblock(self) -> None:
        with self._lock:
            self._blocked = False

    def retarget(self, port: int) -> None:
        """From now on forward to `port` (another node process); current connections are cut."""
        with self._lock:
            self.target_port = port
        self._drop_active()

    def close(self) -> None:
        self._closing = True
        self._listener.close()
        self._drop_active()

    def _drop_active(self) -> None:
        with self._lock:
            active, self._active = list(self._active), set()
        for s in active:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                blocked, port = self._blocked, self.target_port
            if blocked:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                client.close()  # the node is down: the owner sees a refused connection, as without a proxy
                continue
            upstream.settimeout(None)
            with self._lock:
                self._active.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, towards_node: bool) -> None:
        carried = 0
        try:
            while data := source.recv(4096):
                if self.delay:
                    time.sleep(self.delay)
                if towards_node and self._should_cut(carried := carried + len(data)):
                    sink.sendall(data[: len(data) // 2])  # a truncated stream, then the connection drops
                    break
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
            with self._lock:
                self._active.discard(s)

    def _should_cut(self, carried: int) -> bool:
        with self._lock:
            if self._cut_after is None or carried < self._cut_after:
                return False
            self._cut_after = None
            self.cuts += 1
            return True
