"""The control plane the workspace supervisor reports activity to, played on
127.0.0.1 for its tests.

Usage: fake_control_plane.py STATE_DIR. Prints the port it listens on, then
serves until stdin closes. STATE_DIR/mode is read at every request:
"" (200) | 500 | hang (no answer for 60 s). Each request is appended to
STATE_DIR/requests as one JSON line {"method", "path", "auth", "body"};
STATE_DIR/max-in-flight holds the most requests ever open at once.
"""
import http.server
import json
import os
import sys
import threading
import time

STATE = sys.argv[1]
lock = threading.Lock()
in_flight = 0
most = 0


def mode():
    try:
        with open(os.path.join(STATE, "mode")) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        global in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
            with open(os.path.join(STATE, "max-in-flight"), "w") as f:
                f.write(str(most))
        try:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode()
            record = {"method": "POST", "path": self.path, "auth": self.headers.get("Authorization"),
                      "type": self.headers.get("Content-Type"), "body": body, "at": time.time()}
            with lock, open(os.path.join(STATE, "requests"), "a") as log:
                log.write(json.dumps(record) + "\n")
            current = mode()
            if current == "hang":
                time.sleep(60)
                return
            status = 500 if current == "500" else 200
            data = b'{"ok": true}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            with lock:
                in_flight -= 1


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()
