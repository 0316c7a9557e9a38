"""git's smart HTTP over TLS on 127.0.0.1, behind Basic authentication, for
berth's tests: the repositories a dotfiles clone reaches through the
credential helper github-auth provisions.

Usage: git_https_server.py STATE_DIR CERT KEY PROJECT_ROOT. Prints the port
it listens on, then serves until stdin closes (the test ending). Every
request must carry Basic credentials whose password is STATE_DIR/token,
else 401 with a Basic challenge (git then asks its credential helpers).
Each request is appended to STATE_DIR/requests as "METHOD PATH
ok|missing|wrong" (never the credential itself). Real git answers: `git
http-backend` as a CGI program.
"""
import base64
import http.server
import os
import ssl
import subprocess
import sys
import threading

STATE, CERT, KEY, ROOT = sys.argv[1:5]
TOKEN_FILE = os.path.join(STATE, "token")
LOG = os.path.join(STATE, "requests")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def credential(self):
        scheme, _, encoded = self.headers.get("Authorization", "").partition(" ")
        if scheme != "Basic":
            return "missing"
        try:
            _, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            return "wrong"
        with open(TOKEN_FILE) as f:
            return "ok" if password == f.read().strip() else "wrong"

    def serve(self, method):
        path, _, query = self.path.partition("?")
        verdict = self.credential()
        with open(LOG, "a") as log:
            log.write(f"{method} {path} {verdict}\n")
        if verdict != "ok":
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="dotfiles"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        environment = {
            "PATH": "/usr/bin:/bin",
            "GIT_PROJECT_ROOT": ROOT,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": ROOT,
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(length),
            "REMOTE_USER": "dotfiles",
            "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        if self.headers.get("Content-Encoding") == "gzip":
            environment["HTTP_CONTENT_ENCODING"] = "gzip"
        answer = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=environment, timeout=60)
        head, _, payload = answer.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = answer.stdout.partition(b"\n\n")
        status = 200
        headers = []
        for line in head.decode(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self.serve("GET")

    def do_POST(self):
        self.serve("POST")


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(CERT, KEY)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()
