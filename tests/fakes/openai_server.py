"""A stand-in OpenAI-compatible chat server, run as its own process so tests can kill it for real.

    python -m tests.fakes.openai_server PORT [--delay S] [--hang]

It streams a fixed, cited answer one piece every ``--delay`` seconds; ``--hang`` accepts the request
and never answers (a hung backend).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = [
    "黄眉",
    "原本是",
    "弥勒佛",
    "座下",
    "敲磬的",
    "黄眉童子",
    "[1]",
    "。",
    "他在",
    "小西天",
    "设下",
    "假雷音寺",
    "[1]",
    "。",
]


def make_handler(delay: float, hang: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _json(self, payload: object) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._json({"object": "list", "data": [{"id": "fake", "object": "model"}]})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if hang:
                threading.Event().wait()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in ANSWER:
                self._send({"choices": [{"index": 0, "delta": {"content": piece}}]})
                time.sleep(delay)
            self._send({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            self._send("[DONE]")
            self.wfile.write(b"0\r\n\r\n")

        def _send(self, data: object) -> None:
            text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
            line = f"data: {text}\n\n".encode()
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--hang", action="store_true")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.delay, args.hang))
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
