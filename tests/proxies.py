"""A TCP proxy the drills put in front of a shared service (PostgreSQL, Redis) and cut, so
the machine's own server is never stopped: tests/messaging/test_drill_db_cut.py,
test_drill_broker_down.py and test_drill_redis_down.py."""

from __future__ import annotations

import socket
import threading

from tests.stack import free_port


class TcpProxy:
    """A loopback TCP proxy to a service (PostgreSQL, Redis) that can be cut: `stop()` closes
    the listener and every open connection (the portal sees its server vanish), `start()`
    listens again on the same port. Plain threads: two pumps per connection, bounded by the drill's few connections."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream, self.port = upstream, free_port()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> int:
        """Cut: refuse new connections, kill the open ones; returns how many were open."""
        with self._lock:
            doomed, self._sockets = list(self._sockets), set()
            listener, self._listener = self._listener, None
        for sock in [listener, *doomed]:
            if sock is None:
                continue
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        return len(doomed) // 2

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._sockets |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._lock:
            self._sockets.discard(source)
            self._sockets.discard(sink)
