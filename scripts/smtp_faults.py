#!/usr/bin/env python3
"""An SMTP server that misbehaves on purpose, for the SMTP channel's fault tests
and `scripts/chaos`. One mode per run (--mode):

  strip-starttls  EHLO offers AUTH but no STARTTLS (what a middlebox that strips
                  STARTTLS looks like); AUTH is accepted, and noted, if it comes
  inject          STARTTLS is offered; its 220 is followed, in the same write and
                  in plain text, by a forged EHLO reply (CVE-2011-0411 style);
                  then TLS, AUTH PLAIN, and the message is accepted
  huge-reply      the EHLO reply has 100 000 lines
  drop-in-data    no TLS, no AUTH: after DATA's 354 the server reads part of the
                  content and closes the connection

Every event is printed on stdout as one JSON line ({"event": ...}); "ready <port>"
comes first.
"""
import argparse, asyncio, json, os, ssl, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from smtp_sink import self_signed  # noqa: E402


def note(**event):
    print(json.dumps(event), flush=True)


async def session(reader, writer, mode, context):
    tls = False

    async def send(text):
        writer.write(text.encode())
        await writer.drain()

    try:
        await send("220 faults.local ESMTP\r\n")
        while True:
            line = await reader.readline()
            if not line:
                return
            command = line.decode(errors="replace").rstrip("\r\n")
            verb = command.split(" ")[0].upper()
            note(event="command", verb=verb, tls=tls)
            if verb == "EHLO":
                if mode == "huge-reply":
                    writer.write(b"".join(b"250-LINE%d\r\n" % i for i in range(100000)) + b"250 END\r\n")
                    await writer.drain()
                elif mode == "strip-starttls":
                    await send("250-faults.local\r\n250-AUTH PLAIN LOGIN\r\n250 PIPELINING\r\n")
                elif mode == "inject" and not tls:
                    await send("250-faults.local\r\n250-STARTTLS\r\n250 PIPELINING\r\n")
                elif mode == "inject":
                    await send("250-faults.local\r\n250-AUTH PLAIN\r\n250 PIPELINING\r\n")
                else:
                    await send("250-faults.local\r\n250 PIPELINING\r\n")
            elif verb == "STARTTLS" and mode == "inject":
                # The forged reply rides in the same segment as the 220, before TLS starts.
                writer.write(b"220 go ahead\r\n250-forged.local\r\n250 AUTH PLAIN\r\n")
                await writer.drain()
                await writer.start_tls(context)
                tls = True
                note(event="tls")
            elif verb == "AUTH":
                note(event="auth", tls=tls)
                await send("235 ok\r\n")
            elif verb in ("MAIL", "RCPT"):
                await send("250 ok\r\n")
            elif verb == "DATA":
                await send("354 go\r\n")
                if mode == "drop-in-data":
                    await reader.read(64)
                    note(event="dropped in DATA")
                    writer.transport.abort()
                    return
                while True:
                    data = await reader.readline()
                    if not data or data in (b".\r\n", b".\n"):
                        break
                note(event="message", tls=tls)
                await send("250 queued\r\n")
            elif verb == "RSET":
                await send("250 ok\r\n")
            elif verb == "QUIT":
                await send("221 bye\r\n")
                return
            else:
                await send("502 no\r\n")
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as e:
        note(event="error", error=type(e).__name__)
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", required=True, choices=["strip-starttls", "inject", "huge-reply", "drop-in-data"])
    args = parser.parse_args()
    cert, key = self_signed(tempfile.mkdtemp(prefix="reach-smtp-faults-"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = await asyncio.start_server(lambda r, w: session(r, w, args.mode, context), "127.0.0.1", args.port)
    print(f"ready {args.port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
