#!/usr/bin/env python3
"""A real SMTP server for tests and the demo (aiosmtpd): STARTTLS with a
self-signed certificate, AUTH PLAIN/LOGIN after TLS, PIPELINING. Each message
it accepts is appended to --log as one JSON line. Prints "ready <port>" once
listening; runs until killed."""
import argparse, asyncio, datetime, email, email.policy, json, os, ssl, sys, tempfile

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def self_signed(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


class Sink:
    def __init__(self, log):
        self.log = log

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd reads commands one after another, so it can take them pipelined; say so.
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING"] + responses[-1:]

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["subject"] or ""),
            "message_id": str(message["X-Reach-Message-ID"] or ""),
            "body": message.get_content() if not message.is_multipart() else "",
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
        }
        with open(self.log, "a") as f:
            f.write(json.dumps(record) + "\n")
        return "250 OK queued as " + record["message_id"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--user", default="crm")
    parser.add_argument("--password", default="secret")
    args = parser.parse_args()

    cert, key = self_signed(tempfile.mkdtemp(prefix="reach-smtp-"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == args.user \
            and auth_data.password.decode() == args.password
        return AuthResult(success=ok)

    controller = Controller(Sink(args.log), hostname="127.0.0.1", port=args.port, tls_context=context,
                            require_starttls=False, authenticator=authenticator, auth_require_tls=True)
    controller.start()
    print(f"ready {args.port}", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    sys.exit(main())
