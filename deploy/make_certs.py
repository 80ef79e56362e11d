#!/usr/bin/env python3
"""Make a site's TLS files: a private CA and a server certificate signed by it.

    python deploy/make_certs.py --dir /etc/aiot/tls --host aiot.example.com --host 10.0.0.1

writes ``ca.pem`` (give it to gateways: ``enroll --ca-file``, and to the platform:
``MQTT_CA_FILE``), ``ca.key`` (keep it offline after use), ``server.pem`` and ``server.key``
(the web process's HTTPS and Mosquitto's listeners). An existing CA in ``--dir`` is kept, so
re-running it re-issues the server certificate (new host names, renewal) under the same CA
and gateways need nothing new. ECDSA P-256 keys; key files mode 600. Needs only the
``cryptography`` package (a runtime dependency). Prints what it wrote.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 397  # what browsers accept for a server certificate


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "AIoT platform"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def load_or_make_ca(folder: Path, site: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, bool]:
    cert_path, key_path = folder / "ca.pem", folder / "ca.key"
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise SystemExit(f"{key_path}: not an EC private key")
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key, False
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{site} site CA"))
        .issuer_name(_name(f"{site} site CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key, True


def san_entries(hosts: list[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for host in hosts:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host.strip("[]"))))
        except ValueError:
            entries.append(x509.DNSName(host.lower()))
    return entries


def make_server_cert(folder: Path, hosts: list[str], ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, days: int) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + timedelta(days=days), ca.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(san_entries(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(folder / "server.key", _key_pem(key), 0o600)
    # The chain a client needs past the server certificate is the CA itself, which it has.
    _write(folder / "server.pem", cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Make a site's CA and server certificate (see the module docstring).")
    parser.add_argument("--dir", required=True, help="folder for ca.pem, ca.key, server.pem, server.key")
    parser.add_argument("--host", action="append", required=True, help="a DNS name or IP address the server answers to (repeat)")
    parser.add_argument("--site", default="aiot", help="the site's name, in the CA's name")
    parser.add_argument("--days", type=int, default=SERVER_DAYS, help=f"server certificate lifetime (default {SERVER_DAYS})")
    args = parser.parse_args(argv)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key, made = load_or_make_ca(folder, args.site)
    cert = make_server_cert(folder, args.host, ca, ca_key, args.days)
    print(f"{'made' if made else 'kept'} CA {folder / 'ca.pem'} ({ca.subject.rfc4514_string()})")
    print(f"server certificate {folder / 'server.pem'} for {', '.join(args.host)}, valid until {cert.not_valid_after_utc:%Y-%m-%d}; key {folder / 'server.key'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
