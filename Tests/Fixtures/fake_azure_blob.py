"""Azure Blob Storage's Put Blob, played on 127.0.0.1 for the workspace
supervisor's tests (Azurite needs npm, which this machine cannot reach).

Usage: fake_azure_blob.py STATE_DIR SIG. Prints its port, serves until stdin
closes. PUT /CONTAINER/NAME?...&sig=SIG with x-ms-blob-type: BlockBlob
stores the body under STATE_DIR/blobs/CONTAINER/NAME and answers 201; a
wrong sig gets 403, a missing blob type 400. Every request is appended to
STATE_DIR/requests as JSON {"method", "path", "blobType", "length"}.
SIG "sharedkey:ACCOUNT:BASE64KEY" checks Shared Key authorization instead:
the Authorization header must be "SharedKey ACCOUNT:SIGNATURE" for the
string-to-sign Azure's documentation gives (computed here from the request
as received), and x-ms-date must be within 15 minutes.
"""
import base64
import email.utils
import hashlib
import hmac
import http.server
import json
import os
import sys
import threading
import time
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

    def shared_key_ok(self, url, query):
        _, account, key = SIG.split(":", 2)
        date = self.headers.get("x-ms-date")
        if not date or abs(email.utils.parsedate_to_datetime(date).timestamp() - time.time()) > 900:
            return False
        length = self.headers.get("Content-Length", "")
        standard = [self.command, self.headers.get("Content-Encoding", ""), self.headers.get("Content-Language", ""),
                    "" if length == "0" else length, self.headers.get("Content-MD5", ""), self.headers.get("Content-Type", ""),
                    self.headers.get("Date", ""), self.headers.get("If-Modified-Since", ""), self.headers.get("If-Match", ""),
                    self.headers.get("If-None-Match", ""), self.headers.get("If-Unmodified-Since", ""), self.headers.get("Range", "")]
        ms = sorted((name.lower(), value.strip()) for name, value in self.headers.items() if name.lower().startswith("x-ms-"))
        resource = "/" + account + url.path + "".join(f"\n{name.lower()}:{','.join(sorted(values))}" for name, values in sorted(query.items()))
        to_sign = "\n".join(standard) + "\n" + "".join(f"{name}:{value}\n" for name, value in ms) + resource
        expected = base64.b64encode(hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()).decode()
        return hmac.compare_digest(self.headers.get("Authorization", ""), f"SharedKey {account}:{expected}")

    def do_PUT(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with open(os.path.join(STATE, "requests"), "a") as log:
            log.write(json.dumps({"method": "PUT", "path": url.path, "blobType": self.headers.get("x-ms-blob-type"),
                                  "length": len(body)}) + "\n")
        if SIG.startswith("sharedkey:"):
            if not self.shared_key_ok(url, query):
                return self.answer(403)
        elif query.get("sig") != [SIG]:
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
