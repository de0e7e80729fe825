#!/usr/bin/python3
"""A fault-injecting HTTP front for docker-registry, for kiln's transport tests (loopback only).

It forwards every request to --upstream (Host header kept, so the registry's Location headers
point back at the proxy) and applies the first matching rule:

  --rule "METHOD PATH_REGEX ACTION [count=N] [param=value...]"

METHOD is GET, HEAD, PUT, POST, PATCH, DELETE or * ; PATH_REGEX is matched (re.search) against
the path with its query. count=N applies the rule to the first N matching requests only
(default: all). ACTION is one of
  <status>        answer with that status (e.g. 500, 503, 429) and a registry JSON error body
                  (retry_after=S adds a Retry-After header; code=CODE and message=TEXT, %-encoded,
                  set its error; text=TEXT, %-encoded, answers that text/plain body instead)
  reset           close the connection without an answer (TCP RST)
  truncate        forward, but send only the first half of the body (Content-Length stays)
  drip            forward, sending the body at rate=BYTES_PER_SECOND (default 64)
  stall           forward, send the first half of the body, then sleep seconds=S (default 30)
  corrupt         forward, with one byte of the body changed (length unchanged: a bad digest)
  redirect        fetch the upstream answer (with the client's headers), keep it and answer
                  307 to the "other host" server: http://127.0.0.2:PORT/blobs/ID (127.0.0.1
                  with another port when 127.0.0.2 cannot be bound)
  norange         forward, but strip the Range header (the server then answers 200 in full)
  serve           answer 200 with the bytes of file=PATH as Content-Type ctype=TYPE (none when
                  absent) and their Docker-Content-Digest: a hostile registry's own document
  ctype           forward, with the Content-Type header replaced by type=TYPE
  realm           forward, with the realm of a WWW-Authenticate challenge replaced by url=URL
                  (a registry sending clients' credentials to a token server elsewhere)

Every request is logged as a JSON line to --log: method, path, action (or "forward"), status,
and "auth" (whether an Authorization header came). The other host logs to --redirect-log the
same way; a test asserts there that "auth" is always false. --ports-file receives
"PROXY_PORT REDIRECT_HOST:REDIRECT_PORT" once both listen.
"""
import argparse
import http.client
import http.server
import json
import os
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse
import uuid

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
       "upgrade", "proxy-authorization", "proxy-authenticate"}


class Rule:
    def __init__(self, spec):
        parts = spec.split()
        if len(parts) < 3:
            raise SystemExit("bad rule: %r" % spec)
        self.method, self.path, self.action = parts[0].upper(), re.compile(parts[1]), parts[2]
        self.params = dict(p.split("=", 1) for p in parts[3:])
        self.count = int(self.params.get("count", "0"))
        self.used = 0

    def matches(self, method, path):
        if self.method != "*" and self.method != method:
            return False
        if not self.path.search(path):
            return False
        if self.count and self.used >= self.count:
            return False
        return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--redirect-log", required=True)
    ap.add_argument("--ports-file", required=True)
    ap.add_argument("--rule", action="append", default=[])
    ap.add_argument("rules", nargs="*", help="more rules (same syntax as --rule)")
    args = ap.parse_args()

    up = urllib.parse.urlparse(args.upstream)
    rules = [Rule(r) for r in args.rule + args.rules]
    lock = threading.Lock()
    stash = {}

    def log(path, entry):
        with lock:
            with open(path, "a") as f:
                f.write(json.dumps(entry) + "\n")

    def pick(method, path):
        with lock:
            for r in rules:
                if r.matches(method, path):
                    r.used += 1
                    return r
        return None

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    class Base(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def read_body(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = b""
                while True:
                    line = self.rfile.readline()
                    n = int(line.split(b";")[0].strip() or b"0", 16)
                    if n == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return out
                    out += self.rfile.read(n)
                    self.rfile.readline()
            n = int(self.headers.get("Content-Length", "0") or 0)
            return self.rfile.read(n) if n else b""

        def reset(self):
            try:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            self.close_connection = True
            try:
                self.connection.close()
            except OSError:
                pass

    class Other(Base):
        """The "other host" blobs are redirected to: serves stashed bodies, logs Authorization."""

        def do_GET(self):
            key = self.path.split("?")[0].rsplit("/", 1)[-1]
            auth = "Authorization" in self.headers
            with lock:
                item = stash.get(key)
            log(args.redirect_log, {"method": self.command, "path": self.path, "auth": auth,
                                    "status": 200 if item else 404})
            if not item:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, headers, body = item
            self.send_response(200)
            for k, v in headers:
                if k.lower() in ("content-type", "docker-content-digest", "etag"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_GET

    class Proxy(Base):
        def forward(self, body, strip_range=False):
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=120)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            if strip_range:
                headers = {k: v for k, v in headers.items() if k.lower() != "range"}
            if body or self.command in ("PUT", "POST", "PATCH"):
                headers["Content-Length"] = str(len(body))
            conn.request(self.command, self.path, body=body, headers=headers)
            return conn, conn.getresponse()

        def send_head(self, resp, length, ctype=None, realm=None):
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() in HOP or k.lower() == "content-length":
                    continue
                if ctype is not None and k.lower() == "content-type":
                    continue
                if realm is not None and k.lower() == "www-authenticate":
                    v = re.sub(r'realm="[^"]*"', 'realm="%s"' % realm, v)
                self.send_header(k, v)
            if ctype is not None:
                self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(length))
            self.end_headers()

        def handle_any(self):
            body = self.read_body()
            auth = "Authorization" in self.headers
            rule = pick(self.command, self.path)
            action = rule.action if rule else "forward"
            entry = {"method": self.command, "path": self.path, "action": action, "auth": auth}
            if rule and action.isdigit():
                code = int(action)
                ecode = rule.params.get("code", "UNKNOWN")
                emsg = urllib.parse.unquote(rule.params.get("message", "injected failure %d" % code))
                err = json.dumps({"errors": [{"code": ecode, "message": emsg}]}).encode()
                ctype = "application/json"
                if "text" in rule.params:
                    err, ctype = urllib.parse.unquote(rule.params["text"]).encode(), "text/plain"
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                if "retry_after" in rule.params:
                    self.send_header("Retry-After", rule.params["retry_after"])
                self.send_header("Content-Length", str(len(err)))
                self.end_headers()
                self.wfile.write(err)
                entry["status"] = code
                log(args.log, entry)
                return
            if action == "reset":
                log(args.log, entry)
                self.reset()
                return
            if action == "serve":
                import hashlib
                with open(rule.params["file"], "rb") as f:
                    doc = f.read()
                self.send_response(200)
                if "ctype" in rule.params:
                    self.send_header("Content-Type", rule.params["ctype"])
                self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(doc).hexdigest())
                self.send_header("Content-Length", str(len(doc)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(doc)
                entry["status"] = 200
                log(args.log, entry)
                return
            try:
                conn, resp = self.forward(body, strip_range=(action == "norange"))
            except OSError as e:
                entry["error"] = str(e)
                log(args.log, entry)
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            entry["status"] = resp.status
            data = resp.read() if self.command != "HEAD" else b""
            length = int(resp.getheader("Content-Length", len(data)) or 0) if self.command == "HEAD" else len(data)
            conn.close()
            ok = 200 <= resp.status < 300 and self.command == "GET"
            if action == "redirect" and ok:
                key = uuid.uuid4().hex
                with lock:
                    stash[key] = (resp.status, resp.getheaders(), data)
                loc = "http://%s/blobs/%s?sig=kiln-test" % (redirect_hostport, key)
                self.send_response(307)
                self.send_header("Location", loc)
                self.send_header("Content-Length", "0")
                self.end_headers()
                entry["location"] = loc
                log(args.log, entry)
                return
            log(args.log, entry)
            if action == "corrupt" and ok and data:
                data = bytearray(data)
                data[len(data) // 2] ^= 0xFF
                data = bytes(data)
            self.send_head(resp, length, rule.params.get("type") if action == "ctype" else None,
                           rule.params.get("url") if action == "realm" else None)
            if self.command == "HEAD":
                return
            if action in ("truncate", "stall") and ok and data:
                half = len(data) // 2
                self.wfile.write(data[:half])
                self.wfile.flush()
                if action == "stall":
                    time.sleep(float(rule.params.get("seconds", "30")))
                self.reset()
                return
            if action == "drip" and ok:
                rate = max(1, int(rule.params.get("rate", "64")))
                step = max(1, rate // 10)
                for i in range(0, len(data), step):
                    self.wfile.write(data[i:i + step])
                    self.wfile.flush()
                    time.sleep(step / rate)
                return
            self.wfile.write(data)

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any

    try:
        other = Server(("127.0.0.2", 0), Other)
        redirect_host = "127.0.0.2"
    except OSError:
        other = Server(("127.0.0.1", 0), Other)
        redirect_host = "127.0.0.1"
    redirect_hostport = "%s:%d" % (redirect_host, other.server_address[1])
    proxy = Server(("127.0.0.1", 0), Proxy)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    tmp = args.ports_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %s" % (proxy.server_address[1], redirect_hostport))
    os.rename(tmp, args.ports_file)
    proxy.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
