"""Servers that misbehave on purpose, for the tests of hung dependencies."""

from __future__ import annotations

import socket
import threading


class SilentServer:
    """Accepts TCP connections and never sends a byte: a server that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)
            self.took(conn)

    def took(self, conn: socket.socket) -> None:
        """What is done with a connection once accepted: nothing, here."""

    def close(self) -> None:
        for conn in self.accepted:
            conn.close()
        self.sock.close()
