"""A TCP proxy between the data owners and the node that delays every segment and can cut one stream."""

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
        threading.Thread(target=self._accept, daemon=True).start()

    def arm_cut(self, after_bytes: int) -> None:
        with self._lock:
            self._cut_after = after_bytes

    def close(self) -> None:
        self._closing = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()  # the node is down: the owner sees a refused connection, as without a proxy
                continue
            upstream.settimeout(None)
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

    def _should_cut(self, carried: int) -> bool:
        with self._lock:
            if self._cut_after is None or carried < self._cut_after:
                return False
            self._cut_after = None
            self.cuts += 1
            return True
