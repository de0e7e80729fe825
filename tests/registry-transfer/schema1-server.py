#!/usr/bin/python3
"""Serves one Docker schema 1 manifest the way an old registry does, for the refusal test.

  schema1-server.py --port-file FILE
GET /v2/ answers 200 {}; GET /v2/<name>/manifests/<ref> answers a schema 1 manifest with
Content-Type application/vnd.docker.distribution.manifest.v1+prettyjws, whatever Accept says
(as registries holding only schema 1 images do). Everything else is 404.
"""
import argparse
import http.server
import json
import re
import socketserver


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def send(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        if self.path == "/v2/":
            return self.send(200, "application/json", b"{}")
        m = re.match(r"^/v2/(.+)/manifests/([^/]+)$", self.path)
        if m:
            body = json.dumps({
                "schemaVersion": 1, "name": m.group(1), "tag": m.group(2), "architecture": "amd64",
                "fsLayers": [{"blobSum": "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"}],
                "history": [{"v1Compatibility": "{\"id\":\"x\"}"}],
                "signatures": [],
            }, indent=3).encode()
            return self.send(200, "application/vnd.docker.distribution.manifest.v1+prettyjws", body)
        return self.send(404, "application/json",
                         b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}')

    do_HEAD = do_GET


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    args = ap.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(args.port_file + ".tmp", args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
