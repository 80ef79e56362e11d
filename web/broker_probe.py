"""One TLS handshake with the MQTT broker before a long-running process starts.

A broker certificate that the CA does not sign, or that names another host, would otherwise
show up as an endless reconnect loop; the ingest worker and the rollout listener stop at
start instead, with a message naming MQTT_URL and MQTT_CA_FILE. A broker that is simply
down is no reason to stop: the processes wait and reconnect.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

PROBE_TIMEOUT_S = 5.0


class BrokerCertificateError(RuntimeError):
    """The broker answered, but its certificate does not verify."""


def probe_broker_tls(url: str, ca_file: str = "", *, variable: str = "MQTT_URL", timeout: float = PROBE_TIMEOUT_S) -> str:
    """Verify the broker's certificate for ``url`` (mqtts:// only). Returns what was found;
    raises BrokerCertificateError when the certificate does not verify."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtts", "ssl"):
        return "no TLS"
    host, port = parts.hostname or "127.0.0.1", parts.port or 8883
    context = ssl.create_default_context(cafile=ca_file or None)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, context.wrap_socket(raw, server_hostname=host) as tls:
            return f"certificate verified ({tls.version()})"
    except ssl.SSLCertVerificationError as exc:
        ca = f"MQTT_CA_FILE={ca_file!r}" if ca_file else "the system CAs (MQTT_CA_FILE is unset)"
        raise BrokerCertificateError(
            f"{variable}: the broker's certificate at {host}:{port} does not verify against {ca}: {exc.verify_message}"
        ) from None
    except (OSError, TimeoutError) as exc:
        return f"broker not reachable yet ({exc}); will retry"
