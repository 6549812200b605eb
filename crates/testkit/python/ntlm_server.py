"""An HTTP server that authenticates its clients with NTLM, as IIS does, for the webhook
provider's `auth.ntlm` tests.

The NTLM acceptor is pyspnego's (`spnego.server(protocol="ntlm")`): it checks the client's
AUTHENTICATE message (NTLMv2 response, MIC) against the users in `--users`, a file of
`DOMAIN:USER:PASSWORD` lines (pyspnego's NTLM_USER_FILE). A DOMAIN written `@HOST` stands for
the name this server gives as its target in the CHALLENGE (the host name, upper-cased), the
domain a client uses for a user name without one.

Protocol, as a Windows server speaks it:
* a request without `Authorization: NTLM|Negotiate <token>` on an unauthenticated connection
  gets 401 with `WWW-Authenticate` offering the schemes of `--offer` (default NTLM);
* `NTLM <NEGOTIATE>` gets 401 with `WWW-Authenticate: NTLM <CHALLENGE>`; the handshake's state
  belongs to the TCP connection: an AUTHENTICATE on another connection fails;
* `NTLM <AUTHENTICATE>` that checks out gets the answer, and the connection stays
  authenticated; one that does not gets 401 again.
* With `--basic`, a server that offers Basic only: `Authorization: Basic` with a listed user's
  password is accepted (upstream's client falls back to Basic for such a server).

The answer of `GET /<path>` is JSON: `{"path": "<path>", "user": "<DOMAIN\\user>", "value":
"<--value>", "token": "<--value>-token"}`. `GET /healthz` answers 200 without authentication.

Each request is logged as one JSON line on stdout: the connection number, method, path, what
`Authorization` carried (`none`, `Basic`, `NTLM-negotiate`, `NTLM-authenticate`, ...; never a
token or a password), the status, and the authenticated user.
"""

import argparse
import base64
import http.server
import itertools
import json
import os
import socket
import sys
import tempfile
import threading

import spnego

CONNECTIONS = itertools.count(1)
LOG_LOCK = threading.Lock()


def emit(record):
    """Writes one JSON log line whole: handler threads write at once, and print() writes
    the text and its newline separately, so unlocked lines could interleave."""
    with LOG_LOCK:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


def message_type(token):
    """The NTLM message type of a raw token (1, 2 or 3), 0 when it is not NTLMSSP."""
    if len(token) >= 12 and token[:8] == b"NTLMSSP\x00":
        return int.from_bytes(token[8:12], "little")
    return 0


def parse_users(path):
    """(domain, user, password) of each line of the users file."""
    users = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                domain, user, password = line.split(":", 2)
                users.append((domain, user, password))
    return users


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ntlm-test-server"

    def setup(self):
        super().setup()
        self.connection_number = next(CONNECTIONS)
        self.context = None
        self.authenticated_user = None

    def log_message(self, *args):
        pass

    def log_request_line(self, auth, status, user=None):
        emit(
            {
                "conn": self.connection_number,
                "method": self.command,
                "path": self.path,
                "auth": auth,
                "status": status,
                "user": user,
            }
        )

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if body:
            self.send_header("Content-Type", "application/json")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def challenge_headers(self):
        return [("WWW-Authenticate", scheme) for scheme in self.server.offer]

    def answer(self, auth):
        body = json.dumps(
            {
                "path": self.path.lstrip("/"),
                "user": self.authenticated_user,
                "value": self.server.value,
                "token": self.server.value + "-token",
            }
        ).encode()
        self.log_request_line(auth, 200, self.authenticated_user)
        self.reply(200, body)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path == "/healthz":
            self.log_request_line("none", 200)
            self.reply(200, b"{}")
            return
        header = self.headers.get("Authorization") or ""
        scheme, _, token_text = header.partition(" ")
        if scheme in ("NTLM", "Negotiate") and token_text:
            self.ntlm_step(scheme, token_text.strip())
            return
        if scheme == "Basic" and self.server.basic:
            self.basic(token_text.strip())
            return
        auth = scheme or "none"
        if self.authenticated_user is not None:
            self.answer(auth)
            return
        self.log_request_line(auth, 401)
        if self.server.close_anonymous and not header:
            # as an HTTP/1.0 server, or one that ends the connection after a 401, would
            self.close_connection = True
            self.reply(401, headers=self.challenge_headers() + [("Connection", "close")])
            return
        self.reply(401, headers=self.challenge_headers())

    def basic(self, token_text):
        try:
            user, _, password = base64.b64decode(token_text).decode().partition(":")
        except ValueError:
            user, password = None, None
        for domain, listed_user, listed_password in self.server.users:
            full = f"{domain}\\{listed_user}" if domain else listed_user
            if user in (full, listed_user) and password == listed_password:
                self.authenticated_user = full
                self.answer("Basic")
                return
        self.log_request_line("Basic", 401)
        self.reply(401, headers=self.challenge_headers())

    def ntlm_step(self, scheme, token_text):
        try:
            token = base64.b64decode(token_text)
        except ValueError:
            token = b""
        kind = message_type(token)
        label = {1: "negotiate", 3: "authenticate"}.get(kind, "other")
        auth = f"{scheme}-{label}"
        if kind == 1:
            self.context = spnego.server(protocol="ntlm")
            challenge = self.context.step(token)
            self.log_request_line(auth, 401)
            self.reply(
                401,
                headers=[("WWW-Authenticate", f"{scheme} {base64.b64encode(challenge).decode()}")],
            )
            return
        if kind == 3 and self.context is not None:
            context, self.context = self.context, None
            try:
                context.step(token)
            except Exception as e:  # a wrong password, a bad MIC: refused
                emit({"conn": self.connection_number, "refused": type(e).__name__})
            else:
                if context.complete:
                    self.authenticated_user = context.client_principal
                    self.answer(auth)
                    return
        self.log_request_line(auth, 401)
        self.reply(401, headers=self.challenge_headers())

    do_GET = handle_any
    do_POST = handle_any
    do_PUT = handle_any
    do_DELETE = handle_any
    do_HEAD = handle_any


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--users", required=True, help="DOMAIN:USER:PASSWORD lines")
    parser.add_argument("--value", default="ntlm-value")
    parser.add_argument(
        "--offer",
        default="NTLM",
        help="comma-separated WWW-Authenticate schemes of a 401 (NTLM, Negotiate, Basic)",
    )
    parser.add_argument("--basic", action="store_true", help="accept Basic credentials")
    parser.add_argument(
        "--close-anonymous",
        action="store_true",
        help="close the connection after the 401 to a request without Authorization",
    )
    args = parser.parse_args()

    host = socket.gethostname().upper()
    users = [(host if d == "@HOST" else d, u, p) for d, u, p in parse_users(args.users)]
    store = tempfile.NamedTemporaryFile("w", suffix=".ntlm-users", delete=False)
    with store:
        for domain, user, password in users:
            store.write(f"{domain}:{user}:{password}\n")
    os.environ["NTLM_USER_FILE"] = store.name

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.users = users
    server.value = args.value
    server.offer = [s.strip() for s in args.offer.split(",") if s.strip()]
    server.basic = args.basic
    server.close_anonymous = args.close_anonymous
    emit({"listening": args.port, "target": host})
    try:
        server.serve_forever()
    finally:
        os.unlink(store.name)


if __name__ == "__main__":
    sys.exit(main())
