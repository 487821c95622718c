"""Real HTTP servers on loopback for the remote-engine tests (asr/tts/image ``openai`` backends).

Each test file writes its own request handler (what an OpenAI-compatible server answers); this module holds
what they share: starting a threaded server on a free port, a port nobody listens on, a connection reset (RST,
not a polite close), a server that dies in the middle of the first request, and noticing a client that went
away while the handler waits.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up mid-reply, and handlers that reset on purpose, are what the tests are about


@contextlib.contextmanager
def serve(handler: type[BaseHTTPRequestHandler], on_stop: Callable[[], None] = lambda: None) -> Iterator[str]:
    """A threaded HTTP server on a free loopback port; yields its base URL (``http://127.0.0.1:PORT``)."""
    httpd = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        on_stop()
        httpd.shutdown()
        httpd.server_close()


def free_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reset(handler: BaseHTTPRequestHandler) -> None:
    """Drop the handler's connection with a TCP reset, as a crashing server or a middlebox does."""
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    handler.connection.close()
    handler.close_connection = True


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def client_gone(handler: BaseHTTPRequestHandler, wait_s: float) -> bool:
    """Wait up to ``wait_s`` for the client to close its end; True when it did."""
    conn = handler.connection
    readable, _, _ = select.select([conn], [], [], wait_s)
    if not readable:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


@contextlib.contextmanager
def dying_server() -> Iterator[tuple[str, threading.Event]]:
    """A server killed in the middle of the first request: it reads the request's head, then its listening
    socket closes and the connection is reset, so a retry finds nothing listening. Yields the base URL and an
    event set once the request was taken."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    took = threading.Event()

    def run() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                piece = conn.recv(65536)
                if not piece:
                    break
                data += piece
            listener.close()
            took.set()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", took
    finally:
        listener.close()
        thread.join(2)
