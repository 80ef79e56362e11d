"""The documented command that makes a site's CA and server certificate."""

from __future__ import annotations

import ssl
import subprocess
import sys

from cryptography import x509

from tests.helpers import ROOT


def make(folder, *hosts: str) -> str:
    args = [sys.executable, "deploy/make_certs.py", "--dir", str(folder)]
    for host in hosts:
        args += ["--host", host]
    return subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True, timeout=60).stdout


def test_it_makes_a_ca_and_a_server_certificate_for_the_hosts(tmp_path):
    out = make(tmp_path, "aiot.example.com", "10.0.0.1")
    assert "made CA" in out
    cert = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["aiot.example.com"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.1"]
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")  # key and certificate match
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes()))
    assert (tmp_path / "server.key").stat().st_mode & 0o777 == 0o600 and (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600


def test_running_it_again_keeps_the_ca_so_gateways_need_nothing_new(tmp_path):
    make(tmp_path, "aiot.example.com")
    ca_before = (tmp_path / "ca.pem").read_bytes()
    server_before = (tmp_path / "server.pem").read_bytes()
    assert "kept CA" in make(tmp_path, "aiot.example.com", "broker.example.com")
    assert (tmp_path / "ca.pem").read_bytes() == ca_before
    assert (tmp_path / "server.pem").read_bytes() != server_before
    cert = x509.load_pem_x509_certificate((tmp_path / "server.pem").read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_before))
