#!/usr/bin/env python3
"""A provider that misbehaves on purpose, for `scripts/chaos` (scenario 3).

It speaks SPEC §6's batch protocol (POST, {"messages": [...]}) on every path
and records every message id it received, answered or not. Its fault is set
at start (--mode) and can be changed while it runs:

    POST /_mode  {"mode": "slow", "ms": 3000}
    POST /_reset forgets every id and count (a new scenario)

Modes, one at a time:
    ok         200 {"results": [... "ok" ...]}
    slow       wait `ms` before answering 200 (longer than the client's timeout_ms)
    reset      read the request, then reset the connection (RST) instead of answering
    cut        send the status line and half a body, then close
    malformed  200 with a body that is not JSON
    partial    200 with results for the first half of the batch only
    storm429   429 with Retry-After: `retry_after` (default 1)
    blackhole  read the request and never answer (the connection is held open)
    flaky      every 10th request answers 503 (the soak's steady trickle of retries)

GET /stats answers {"requests", "messages", "distinct", "duplicates", "by_mode"};
GET /ids answers {"<message_id>": times received, ...}.
"""
import argparse
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
state = {"mode": "ok", "ms": 0, "retry_after": 1}
seen = {}
stats = {"requests": 0, "messages": 0, "by_mode": {}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with lock:
            if self.path == "/stats":
                distinct = len(seen)
                body = json.dumps({**stats, "distinct": distinct, "duplicates": stats["messages"] - distinct, **state})
            elif self.path == "/ids":
                body = json.dumps(seen)
            else:
                body = None
        if body is None:
            self.reply(404, '{"error": "no such path"}')
        else:
            self.reply(200, body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path == "/_reset":
            with lock:
                seen.clear()
                stats.update(requests=0, messages=0, by_mode={})
            self.reply(200, "{}")
            return
        if self.path == "/_mode":
            with lock:
                state.update(json.loads(raw))
            self.reply(200, json.dumps(state))
            return
        try:
            batch = json.loads(raw)["messages"]
            ids = [m["message_id"] for m in batch]
            # Refusals echo the first recipient's address, as real vendors do: bait for the log scan.
            to = str(batch[0].get("to", "")) if batch else ""
        except Exception:
            self.reply(400, '{"error": "not a batch"}')
            return
        with lock:
            mode, ms, retry_after = state["mode"], state["ms"], state["retry_after"]
            stats["requests"] += 1
            stats["by_mode"][mode] = stats["by_mode"].get(mode, 0) + 1
            # A 429 or 503 is a refusal: nothing was taken. Every other answer (or none) may have been.
            refused = mode == "storm429" or (mode == "flaky" and stats["requests"] % 10 == 0)
            if not refused:
                stats["messages"] += len(ids)
                for i in ids:
                    seen[i] = seen.get(i, 0) + 1
        ok = json.dumps({"results": [{"message_id": i, "status": "ok"} for i in ids]})
        if mode == "ok" or (mode == "flaky" and stats["requests"] % 10):
            self.reply(200, ok)
        elif mode == "flaky":
            self.reply(503, json.dumps({"error": f"try again later for {to}"}))
        elif mode == "slow":
            time.sleep(ms / 1000)
            self.reply(200, ok)
        elif mode == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif mode == "cut":
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(ok))
            self.wfile.write(ok[: len(ok) // 2].encode())
            self.wfile.flush()
            self.connection.close()
            self.close_connection = True
        elif mode == "malformed":
            self.reply(200, '{"results": [{"message_id": ')
        elif mode == "partial":
            half = ids[: max(1, len(ids) // 2)]
            self.reply(200, json.dumps({"results": [{"message_id": i, "status": "ok"} for i in half]}))
        elif mode == "storm429":
            self.reply(429, json.dumps({"error": f"slow down: {to} over quota"}), [("Retry-After", str(retry_after))])
        elif mode == "blackhole":
            time.sleep(300)
            self.close_connection = True
        else:
            self.reply(500, json.dumps({"error": f"unknown mode {mode}"}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", default="ok")
    parser.add_argument("--ms", type=int, default=0)
    args = parser.parse_args()
    state.update(mode=args.mode, ms=args.ms)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    server.serve_forever()


if __name__ == "__main__":
    main()
