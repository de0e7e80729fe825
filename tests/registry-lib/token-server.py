#!/usr/bin/python3
"""A small Docker-style token server for kiln's registry tests.

Issues JWTs (RS256) that docker-registry (distribution 2.8) trusts through auth.token
(rootcertbundle = the self-signed cert made from --key). The "kid" header is the libtrust key
ID of the public key, which is how distribution looks up a trusted key.

GET /token?service=S&scope=repository:NAME:ACTIONS[&scope=...]
  - with Basic auth: USER:PASS must match --user/--password, else 401; the user is granted every
    action requested (pull, push, delete, *)
  - anonymous: granted "pull" only (or nothing with --no-anonymous, which answers 401)
POST /token (OAuth2, form body grant_type=password|refresh_token): as docker does with
  identity tokens; refresh_token must equal --refresh-token.
Responses: {"token": T, "access_token": T, "expires_in": N, "issued_at": ...}; --field picks
which of token/access_token is present (both by default).
Every request is appended as one JSON line to --log (method, path, scopes, user, granted).
The listening port is written to --port-file once it is ready.
"""
import argparse
import base64
import datetime
import hashlib
import http.server
import json
import os
import socketserver
import sys
import time
import urllib.parse
import uuid

import jwt
from cryptography.hazmat.primitives import serialization


def libtrust_key_id(pub):
    der = pub.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, 48, 4))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key", required=True, help="PEM private key (RSA)")
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--service", required=True)
    ap.add_argument("--user", default="")
    ap.add_argument("--password", default="")
    ap.add_argument("--refresh-token", default="")
    ap.add_argument("--no-anonymous", action="store_true")
    ap.add_argument("--field", choices=["both", "token", "access_token"], default="both")
    ap.add_argument("--expires-in", type=int, default=300)
    ap.add_argument("--log", default="")
    ap.add_argument("--port-file", required=True)
    args = ap.parse_args()

    with open(args.key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    kid = libtrust_key_id(key.public_key())

    def log(entry):
        if args.log:
            with open(args.log, "a") as f:
                f.write(json.dumps(entry) + "\n")

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def reply(self, code, obj, extra=None):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def basic_user(self):
            h = self.headers.get("Authorization", "")
            if not h.lower().startswith("basic "):
                return None, None
            try:
                dec = base64.b64decode(h[6:].strip()).decode()
            except Exception:
                return "", ""
            u, _, p = dec.partition(":")
            return u, p

        def grant(self, user, scopes):
            access = []
            for sc in scopes:
                parts = sc.split(":")
                if len(parts) < 3:
                    continue
                typ, name, actions = parts[0], ":".join(parts[1:-1]), parts[-1].split(",")
                if user:
                    ok = [a for a in actions if a in ("pull", "push", "delete", "*")]
                else:
                    ok = [a for a in actions if a == "pull"]
                if ok:
                    access.append({"type": typ, "name": name, "actions": ok})
            return access

        def issue(self, user, scopes, method, extra=None):
            access = self.grant(user, scopes)
            now = int(time.time())
            claims = {"iss": args.issuer, "sub": user or "", "aud": args.service,
                      "exp": now + args.expires_in, "nbf": now - 10, "iat": now,
                      "jti": uuid.uuid4().hex, "access": access}
            tok = jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})
            if isinstance(tok, bytes):
                tok = tok.decode()
            out = {"expires_in": args.expires_in,
                   "issued_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
            if args.field in ("both", "token"):
                out["token"] = tok
            if args.field in ("both", "access_token"):
                out["access_token"] = tok
            if extra:
                out.update(extra)
            log({"method": method, "path": self.path.split("?")[0], "user": user or "",
                 "scopes": scopes, "granted": access})
            self.reply(200, out)

        def do_GET(self):
            u = urllib.parse.urlparse(self.path)
            if u.path != "/token":
                return self.reply(404, {"error": "not found"})
            q = urllib.parse.parse_qs(u.query)
            scopes = [s for v in q.get("scope", []) for s in v.split(" ") if s]
            user, pw = self.basic_user()
            if user is not None:
                if user != args.user or pw != args.password or not args.user:
                    log({"method": "GET", "path": u.path, "user": user, "scopes": scopes,
                         "denied": True})
                    return self.reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                                        "message": "invalid username or password"}]})
            elif args.no_anonymous:
                log({"method": "GET", "path": u.path, "user": "", "scopes": scopes, "denied": True})
                return self.reply(401, {"errors": [{"code": "UNAUTHORIZED",
                                                    "message": "authentication required"}]},
                                  {"WWW-Authenticate": 'Basic realm="token"'})
            self.issue(user, scopes, "GET")

        def do_POST(self):
            u = urllib.parse.urlparse(self.path)
            n = int(self.headers.get("Content-Length", "0") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(n).decode())
            if u.path != "/token":
                return self.reply(404, {"error": "not found"})
            scopes = [s for v in form.get("scope", []) for s in v.split(" ") if s]
            gt = form.get("grant_type", [""])[0]
            if gt == "password":
                user = form.get("username", [""])[0]
                ok = user == args.user and form.get("password", [""])[0] == args.password
                extra = {"refresh_token": args.refresh_token} if ok and args.refresh_token else None
            elif gt == "refresh_token":
                user = args.user
                ok = bool(args.refresh_token) and form.get("refresh_token", [""])[0] == args.refresh_token
                extra = None
            else:
                user, ok, extra = "", False, None
            if not ok:
                log({"method": "POST", "path": u.path, "user": user, "scopes": scopes, "denied": True})
                return self.reply(401, {"error": "invalid_grant"})
            self.issue(user, scopes, "POST", extra)

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server(("127.0.0.1", 0), Handler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
