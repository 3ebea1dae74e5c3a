"""TLS material for --secure: a CA, server and client certificates (openssl CLI)."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stack_files import read_or_empty, write_text_atomic
from stack_procs import apt_install, run
from stack_settings import Settings, StackError, say

CERT_DAYS = 825
CA_DAYS = 3650
RENEW_WITHIN_S = 30 * 86400


@dataclass(frozen=True)
class TlsFiles:
    """Certificates under .stack/tls; the client ones named as Aiven hands them out.

    ca.pem + service.cert + service.key is what a client needs; server.* serve Kafka (as
    server-keystore.pem: key + chain, a PEM keystore) and PostgreSQL. wrong/ holds a second,
    unrelated CA with its own client certificate, for tests that must be refused.
    """

    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    @property
    def kafka_keystore(self) -> Path:
        return self.root / "server-keystore.pem"

    @property
    def client_cert(self) -> Path:
        return self.root / "service.cert"

    @property
    def client_key(self) -> Path:
        return self.root / "service.key"

    @property
    def wrong(self) -> TlsFiles:
        return TlsFiles(self.root / "wrong")


def find_openssl() -> str:
    found = shutil.which("openssl")
    if not found:
        apt_install(["openssl"], "--secure makes certificates with the openssl CLI")
        found = shutil.which("openssl")
    if not found:
        raise StackError("openssl not found; install it (apt-get install openssl)")
    return found


def _cert_fresh(openssl: str, cert: Path, ca: Path) -> bool:
    """Present, signed by `ca`, and valid for at least another 30 days."""
    if not cert.exists() or not ca.exists():
        return False
    checkend = subprocess.run(
        [openssl, "x509", "-checkend", str(RENEW_WITHIN_S), "-noout", "-in", str(cert)],
        capture_output=True,
    )
    if checkend.returncode != 0:
        return False
    verify = subprocess.run(
        [openssl, "verify", "-CAfile", str(ca), str(cert)], capture_output=True, text=True
    )
    return verify.returncode == 0


def _make_ca(openssl: str, tls: TlsFiles, name: str) -> None:
    tls.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    run(
        [
            openssl,
            "req",
            "-x509",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            str(CA_DAYS),
            "-subj",
            f"/O=metrictui/CN={name}",
            "-keyout",
            str(tls.ca_key),
            "-out",
            str(tls.ca),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
        ],
        what=f"openssl: making {name}",
    )
    os.chmod(tls.ca_key, 0o600)


def _make_leaf(
    openssl: str, tls: TlsFiles, cert: Path, key: Path, cn: str, extensions: Sequence[str]
) -> None:
    """A key + certificate signed by `tls`'s CA (PKCS#8 key, like Aiven's service.key)."""
    csr = cert.with_suffix(".csr")
    ext = cert.with_suffix(".ext")
    base_ext = [
        "basicConstraints=critical,CA:FALSE",
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid,issuer",
    ]
    ext.write_text("\n".join([*base_ext, *extensions]) + "\n")
    try:
        run(
            [
                openssl,
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                f"/O=metrictui/CN={cn}",
                "-keyout",
                str(key),
                "-out",
                str(csr),
            ],
            what=f"openssl: key for {cn}",
        )
        os.chmod(key, 0o600)
        run(
            [
                openssl,
                "x509",
                "-req",
                "-sha256",
                "-days",
                str(CERT_DAYS),
                "-in",
                str(csr),
                "-CA",
                str(tls.ca),
                "-CAkey",
                str(tls.ca_key),
                "-set_serial",
                f"0x{secrets.token_hex(16)}",
                "-extfile",
                str(ext),
                "-out",
                str(cert),
            ],
            what=f"openssl: certificate for {cn}",
        )
    finally:
        csr.unlink(missing_ok=True)
        ext.unlink(missing_ok=True)


SERVER_EXTENSIONS = (
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=serverAuth,clientAuth",
)
CLIENT_EXTENSIONS = (
    "keyUsage=critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage=clientAuth",
)


def ensure_tls(settings: Settings) -> None:
    """Make (once) or renew (near expiry) the CA and certificates; cheap when all are fresh."""
    openssl = find_openssl()
    tls = TlsFiles(settings.tls_dir)
    made = False
    for pki, ca_name in ((tls, "metrictui local stack CA"), (tls.wrong, "metrictui WRONG CA")):
        if not (pki.ca_key.exists() and _cert_fresh(openssl, pki.ca, pki.ca)):
            say(f"making {ca_name} in {pki.root} ...")
            _make_ca(openssl, pki, ca_name)
            made = True
        if not _cert_fresh(openssl, pki.client_cert, pki.ca):
            _make_leaf(
                openssl, pki, pki.client_cert, pki.client_key, "metrictui-client", CLIENT_EXTENSIONS
            )
            made = True
    if not _cert_fresh(openssl, tls.server_cert, tls.ca):
        _make_leaf(openssl, tls, tls.server_cert, tls.server_key, "localhost", SERVER_EXTENSIONS)
        made = True
    keystore = tls.server_key.read_text() + tls.server_cert.read_text() + tls.ca.read_text()
    if read_or_empty(tls.kafka_keystore) != keystore:
        write_text_atomic(tls.kafka_keystore, keystore, mode=0o600)
    if made:
        say(f"certificates ready in {tls.root} (ca.pem, service.cert, service.key; wrong/)")


def tls_fingerprint(settings: Settings) -> str:
    """Changes when the server certificate does: Kafka must then restart to pick it up."""
    tls = TlsFiles(settings.tls_dir)
    return hashlib.sha256(read_or_empty(tls.kafka_keystore).encode()).hexdigest()[:16]
