"""A real SMTP server for keystep's tests, built on aiosmtpd.

Started by the Go package internal/smtptest. It listens on HOST at a free
port, speaks STARTTLS, implicit TLS or plain text (--mode), requires AUTH
(PLAIN or LOGIN) with the one user and password it is given, and stores
every accepted message, byte for byte, as a file in a maildir-like
directory: written under MAILDIR/tmp, then renamed into MAILDIR/new.

It talks to the Go side on stdout, one line per event, flushed at once:

    ready <port>
    stored <json: file, mail_from, rcpt_tos, login, tls>

It exits when its stdin is closed. The password comes in the environment variable SMTPTEST_PASSWORD, so that
it is not on the command line.
"""

import argparse
import asyncio
import hmac
import json
import logging
import os
import ssl
import sys
import threading
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--mode", choices=["starttls", "tls", "none"], default="starttls")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--maildir", required=True)
    p.add_argument("--username", required=True)
    args = p.parse_args()
    password = os.environ.get("SMTPTEST_PASSWORD", "")
    if not password:
        sys.exit("smtpd.py: SMTPTEST_PASSWORD is not set")
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(args.maildir, sub), exist_ok=True)
    # aiosmtpd warns when AUTH may go over plain text; "none" mode means it.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.getLogger("mail.log").addFilter(
        lambda r: "auth_require_tls == False" not in r.getMessage())
    # Stop when the Go test that started us goes away, however it ends: it
    # holds our stdin open until then.
    threading.Thread(target=exit_on_stdin_eof, daemon=True).start()
    asyncio.run(serve(args, password))


def exit_on_stdin_eof():
    sys.stdin.buffer.read()
    os._exit(0)


class Handler:
    def __init__(self, maildir):
        self.maildir = maildir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        name = "%06d.eml" % self.count
        tmp = os.path.join(self.maildir, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(envelope.original_content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(self.maildir, "new", name))
        event = {
            "file": name,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "login": session.auth_data if session.authenticated else "",
            "tls": server.transport.get_extra_info("ssl_object") is not None,
        }
        print("stored " + json.dumps(event), flush=True)
        return "250 Message accepted for delivery"


def authenticator(username, password):
    want_user = username.encode()
    want_pass = password.encode()

    def check(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok_user = hmac.compare_digest(auth_data.login, want_user)
        ok_pass = hmac.compare_digest(auth_data.password, want_pass)
        if ok_user and ok_pass:
            return AuthResult(success=True, auth_data=username)
        return AuthResult(success=False, handled=False)

    return check


async def serve(args, password):
    loop = asyncio.get_running_loop()
    tls = None
    if args.mode != "none":
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(args.cert, args.key)
    handler = Handler(args.maildir)
    check = authenticator(args.username, password)

    def factory():
        return SMTP(
            handler,
            hostname="smtptest.localhost",
            # STARTTLS only in starttls mode; with implicit TLS the
            # connection is encrypted before the first line.
            tls_context=tls if args.mode == "starttls" else None,
            require_starttls=args.mode == "starttls",
            auth_required=True,
            # aiosmtpd only counts STARTTLS as TLS: with implicit TLS the
            # transport is already encrypted, and in "none" mode the test
            # means to let AUTH go over plain text on loopback.
            auth_require_tls=args.mode == "starttls",
            authenticator=check,
            loop=loop,
        )

    server = await loop.create_server(
        factory,
        host=args.host,
        port=0,
        ssl=tls if args.mode == "tls" else None,
    )
    port = server.sockets[0].getsockname()[1]
    print("ready %d" % port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    main()
