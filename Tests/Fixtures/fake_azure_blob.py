"""Azure Blob Storage's Put Blob, played on 127.0.0.1 for the workspace
supervisor's tests (Azurite needs npm, which this machine cannot reach).

Usage: fake_azure_blob.py STATE_DIR SIG. Prints its port, serves until stdin
closes. PUT /CONTAINER/NAME?...&sig=SIG with x-ms-blob-type: BlockBlob
stores the body under STATE_DIR/blobs/CONTAINER/NAME and answers 201; a
wrong sig gets 403, a missing blob type 400. Every request is appended to
STATE_DIR/requests as JSON {"method", "path", "blobType", "length"}.
"""
import http.server
import json
import os
import sys
import threading
import urllib.parse

STATE, SIG = sys.argv[1], sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PUT(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with open(os.path.join(STATE, "requests"), "a") as log:
            log.write(json.dumps({"method": "PUT", "path": url.path, "blobType": self.headers.get("x-ms-blob-type"),
                                  "length": len(body)}) + "\n")
        if query.get("sig") != [SIG]:
            return self.answer(403)
        if self.headers.get("x-ms-blob-type") != "BlockBlob":
            return self.answer(400)
        target = os.path.join(STATE, "blobs", url.path.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(body)
        self.answer(201)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()
