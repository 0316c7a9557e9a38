"""GitHub's REST API and a token endpoint, played on 127.0.0.1 for berth's tests.

Usage: fake_github.py STATE_DIR. Prints the port it listens on, then serves
until stdin closes (the test ending). Behaviour is read from files in
STATE_DIR at every request, so a test changes it between requests:
  users.json     {"TOKEN": {"login": ..., "id": ..., "name": ..., "email": ...}}
                 tokens not in it get 401 Bad credentials
  user-mode      "" (normal) | slow | hang | 500 | malformed   for GET /user
                 | huge (a 2 MiB body) | newline-login | control-login
  endpoint       the token endpoint's answer body (GET /token)
  endpoint-auth  the bearer credential /token requires
  endpoint-mode  "" | hang | 500 | malformed | huge (100 KiB)   for GET /token
Every request is appended to STATE_DIR/requests as "METHOD PATH AUTHSCHEME"
(never the credential itself, nor the query string, which routing ignores).
"""
import http.server
import json
import os
import sys
import threading
import time

STATE = sys.argv[1]


def state(name, default=""):
    try:
        with open(os.path.join(STATE, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return default


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def hang(self):
        # Bounded: a test never runs this long, and the server dies with it.
        time.sleep(120)

    def do_GET(self):
        auth = self.headers.get("Authorization", "")
        scheme, _, credential = auth.partition(" ")
        path = self.path.split("?")[0]
        with open(os.path.join(STATE, "requests"), "a") as log:
            log.write(f"GET {path} {scheme or '-'}\n")
        if path == "/user":
            mode = state("user-mode")
            if mode == "hang":
                return self.hang()
            if mode == "slow":
                time.sleep(1.5)
            if mode == "500":
                return self.answer(500, '{"message": "Server Error"}')
            if mode == "malformed":
                return self.answer(200, '{"login": "octocat", ')
            if mode == "huge":
                return self.answer(200, '{"login": "octocat", "id": 1, "bio": "' + "x" * (2 << 20) + '"}')
            if mode == "newline-login":
                return self.answer(200, json.dumps({"login": "octo\ncat", "id": 1}))
            if mode == "control-login":
                return self.answer(200, json.dumps({"login": "octo\u001b[31mcat", "id": 1}))
            users = json.loads(state("users.json", "{}"))
            if scheme.lower() not in ("bearer", "token") or credential not in users:
                return self.answer(401, '{"message": "Bad credentials", "status": "401"}')
            return self.answer(200, json.dumps(users[credential]))
        if path == "/token":
            mode = state("endpoint-mode")
            if mode == "hang":
                return self.hang()
            if mode == "500":
                return self.answer(500, "internal error", "text/plain")
            if scheme.lower() != "bearer" or credential != state("endpoint-auth", "\0"):
                return self.answer(401, '{"message": "unauthorized"}')
            if mode == "malformed":
                return self.answer(200, '{"token": ')
            if mode == "huge":
                return self.answer(200, "ghp_" + "x" * (100 << 10), "text/plain")
            return self.answer(200, state("endpoint"))
        self.answer(404, '{"message": "Not Found"}')


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_address[1], flush=True)
sys.stdin.read()
