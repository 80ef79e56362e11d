"""What ``AIOT_PRODUCTION=1`` refuses at start-up, each refusal naming the variable to fix.

Called by web.settings with the values it read, so every process of a deployment (web,
ingest, Celery, the rollout listener, manage.py) stops before it serves anything unsafe.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

MIN_SECRET_CHARS = 32
MIN_SECRET_DISTINCT = 10  # "aaaa...a" or "0101...01" is long but guessable
TLS_SCHEMES = ("mqtts", "ssl")


def check_secret(secret: str, default: str) -> None:
    if not secret or secret == default:
        raise ImproperlyConfigured("AIOT_PRODUCTION=1 needs SECRET_KEY (or SECRET_KEY_FILE): it is unset or the insecure default")
    if len(secret) < MIN_SECRET_CHARS or len(set(secret)) < MIN_SECRET_DISTINCT:
        raise ImproperlyConfigured(
            f"AIOT_PRODUCTION=1 needs SECRET_KEY (or SECRET_KEY_FILE) of {MIN_SECRET_CHARS}+ characters with {MIN_SECRET_DISTINCT}+ different ones; "
            f"this one has {len(secret)} characters, {len(set(secret))} different. Make one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )


def check_required(values: dict[str, str]) -> None:
    """Each variable in ``values`` must be set (the embedded defaults are one process only)."""
    for name, value in values.items():
        if not value:
            raise ImproperlyConfigured(f"AIOT_PRODUCTION=1 needs {name}: the embedded default serves one process only")


def check_broker_tls(name: str, url: str, allow_plain: bool) -> None:
    """A broker URL must use TLS (mqtts://) unless AIOT_ALLOW_PLAIN_MQTT=1 says otherwise."""
    if url and urlsplit(url).scheme not in TLS_SCHEMES and not allow_plain:
        raise ImproperlyConfigured(
            f"AIOT_PRODUCTION=1 refuses {name} without TLS ({urlsplit(url).scheme}://): use mqtts://host:8883 "
            "(MQTT_CA_FILE for a private CA), or set AIOT_ALLOW_PLAIN_MQTT=1 for a broker on a trusted network"
        )


def check_ca_file(path: str) -> None:
    """MQTT_CA_FILE, when set, must be a readable PEM bundle that Python's ssl module loads."""
    if not path:
        return
    if not Path(path).is_file():
        raise ImproperlyConfigured(f"MQTT_CA_FILE={path!r} does not exist")
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ImproperlyConfigured(f"MQTT_CA_FILE={path!r} is not a PEM certificate bundle: {exc}") from None


def _names_in(cert) -> tuple[set[str], set[str]]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    dns = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return dns, ips


def _covers(dns: set[str], ips: set[str], host: str) -> bool:
    host = host.strip("[]").lower()
    if host in ips or host in dns:
        return True
    first, _, rest = host.partition(".")
    return bool(rest) and f"*.{rest}" in dns


def check_server_certificate(cert_file: str, key_file: str, hosts: list[str]) -> None:
    """TLS_CERT_FILE and TLS_KEY_FILE (the web process's HTTPS) must be a pair, unexpired, and
    name every host of ALLOWED_HOSTS that is not a pattern."""
    if not cert_file and not key_file:
        return
    if not cert_file or not key_file:
        raise ImproperlyConfigured("set both TLS_CERT_FILE and TLS_KEY_FILE (or neither, behind a TLS proxy)")
    for name, path in (("TLS_CERT_FILE", cert_file), ("TLS_KEY_FILE", key_file)):
        if not Path(path).is_file():
            raise ImproperlyConfigured(f"{name}={path!r} does not exist")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        raise ImproperlyConfigured(f"TLS_CERT_FILE={cert_file!r} does not match TLS_KEY_FILE={key_file!r} (or one is not PEM): {exc.reason or exc}") from None
    from datetime import UTC, datetime

    from cryptography import x509

    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    if cert.not_valid_after_utc < datetime.now(UTC):
        raise ImproperlyConfigured(f"TLS_CERT_FILE={cert_file!r} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    dns, ips = _names_in(cert)
    uncovered = [h for h in hosts if h not in ("*",) and not h.startswith(".") and not _covers(dns, ips, h)]
    if uncovered:
        raise ImproperlyConfigured(
            f"TLS_CERT_FILE={cert_file!r} does not name {', '.join(uncovered)} (from ALLOWED_HOSTS); it names {', '.join(sorted(dns | ips)) or 'nothing'}"
        )
