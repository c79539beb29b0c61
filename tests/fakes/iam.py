"""A fake of IAM Credentials `signBlob`, reached through an HTTPS proxy on loopback.

google-cloud-storage signs a URL for workload credentials (no private key) by
POSTing to `https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/
{email}:signBlob`, a fixed https address. `requests` (which google-auth uses)
honours `HTTPS_PROXY` and `REQUESTS_CA_BUNDLE`, so the test points both here:
this proxy answers the CONNECT itself, speaks TLS with a certificate for that
host issued by a CA made for the run, and signs the payload with the service
account's key the way IAM would. Nothing leaves the machine.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

IAM_HOST = "iamcredentials.googleapis.com"


@dataclass
class SignCall:
    """One signBlob request as the SDK sent it."""

    path: str
    authorization: str
    payload: bytes


def _certificate(
    subject: str, key: rsa.RSAPrivateKey, issuer: x509.Certificate | None, signer: rsa.RSAPrivateKey
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), False)
    return builder.sign(signer, hashes.SHA256())


class SignBlobProxy:
    """An HTTPS proxy that is itself the signBlob endpoint, in a thread."""

    def __init__(self, folder: Path, signing_key: rsa.RSAPrivateKey, token: str) -> None:
        self.signing_key = signing_key
        self.token = token
        self.calls: list[SignCall] = []
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca = _certificate("canvasflow test CA", ca_key, None, ca_key)
        host_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        host = _certificate(IAM_HOST, host_key, ca, ca_key)
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        cert_file, key_file = folder / "host.pem", folder / "host.key"
        cert_file.write_bytes(host.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            host_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert_file, key_file)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> SignBlobProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()
        self._thread.join(5)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            # a client that went away: the test sees what it missed
            with conn, contextlib.suppress(OSError, ValueError):
                self._one(conn)

    def _one(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        plain = conn.makefile("rb")
        request_line = plain.readline().decode()
        while plain.readline() not in (b"\r\n", b""):
            pass
        if not request_line.startswith(f"CONNECT {IAM_HOST}:443 "):
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        with self.tls.wrap_socket(conn, server_side=True) as tls:
            stream = tls.makefile("rb")
            method, path, _ = stream.readline().decode().split(" ", 2)
            headers: dict[str, str] = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = stream.read(int(headers.get("content-length", "0")))
            status, answer = self._sign(method, path, headers, body)
            data = json.dumps(answer).encode()
            tls.sendall(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
                + data
            )

    def _sign(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[str, dict[str, object]]:
        authorization = headers.get("authorization", "")
        if authorization != f"Bearer {self.token}":
            return "401 Unauthorized", {"error": {"code": 401, "message": "bad token"}}
        if method != "POST" or ":signBlob" not in path:
            return "404 Not Found", {"error": {"code": 404, "message": path}}
        payload = base64.b64decode(json.loads(body)["payload"])
        self.calls.append(SignCall(path, authorization, payload))
        signature = self.signing_key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
        return "200 OK", {"keyId": "fake-key-1", "signedBlob": base64.b64encode(signature).decode()}
