"""One site on this machine: folders, secrets, TLS files, the broker's config and the
environment every platform process gets (what an operator writes into /etc/aiot/aiot.env)."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from .stack import free_port
from .table import ROOT

SHIPPED_BROKER_CONF = ROOT / "deploy" / "mosquitto" / "aiot.conf"
# The shipped config's site-specific values and what the check puts in their place.
SHIPPED_PORTS = {"8883": "node", "8884": "service"}


@dataclass
class Site:
    root: Path
    python: str  # the interpreter of the platform's (runtime-only) virtualenv
    database_url: str
    redis_url: str
    https_port: int = field(default_factory=free_port)
    node_port: int = field(default_factory=free_port)
    service_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        for sub in ("tls", "secrets", "mosquitto", "mosquitto-data", "run", "keys", "var", "static", "logs", "nodes"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def ca_file(self) -> Path:
        return self.tls / "ca.pem"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def write_secret(self, name: str, value: str | None = None) -> Path:
        path = self.root / "secrets" / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write((value or secrets.token_urlsafe(48)) + "\n")
        return path

    def env(self) -> dict[str, str]:
        """The deployment's environment (README: Running in production)."""
        bin_dir = str(Path(self.python).parent)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIOT_", "MQTT_", "DJANGO_", "CELERY_", "TWIN_", "ROLLOUT_", "INGEST_"))}
        for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "CHANNEL_LAYER_PREFIX", "VIRTUAL_ENV", "PYTHONPATH"):
            base.pop(name, None)
        return {
            **base,
            "PATH": f"{bin_dir}:{base.get('PATH', '/usr/bin:/bin')}",
            "PYTHONUNBUFFERED": "1",
            "AIOT_PRODUCTION": "1",
            "SECRET_KEY_FILE": str(self.root / "secrets" / "secret_key"),
            "ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "CHANNEL_LAYER_PREFIX": "prodcheck",
            "MQTT_URL": f"mqtts://aiot-ingest@127.0.0.1:{self.service_port}",
            "MQTT_INGEST_PASSWORD_FILE": str(self.root / "secrets" / "mqtt_ingest"),
            "MQTT_PLATFORM_PASSWORD_FILE": str(self.root / "secrets" / "mqtt_platform"),
            "MQTT_CA_FILE": str(self.ca_file),
            "MQTT_NODE_BROKER_URL": f"mqtts://127.0.0.1:{self.node_port}",
            "MQTT_PASSWORD_FILE": str(self.root / "mosquitto" / "passwd"),
            "MQTT_ACL_FILE": str(self.root / "mosquitto" / "acl"),
            "MOSQUITTO_PID_FILE": str(self.root / "run" / "mosquitto.pid"),
            "MODEL_SIGNING_KEY_FILE": str(self.root / "keys" / "model-signing.pem"),
            "AIOT_VAR_DIR": str(self.root / "var"),
            "STATIC_ROOT": str(self.root / "static"),
            "AIOT_TLS_DIR": str(self.tls),
            "TLS_CERT_FILE": str(self.tls / "server.pem"),
            "TLS_KEY_FILE": str(self.tls / "server.key"),
            "HTTPS_PORT": str(self.https_port),
            "PLATFORM_PUBLIC_URL": self.url,
            "ENROLLMENT_PUBLIC_URL": self.url,
            # Quicker than the defaults, so the check is short; the same code paths.
            "TWIN_REFRESH_INTERVAL_S": "5",
            "ROLLOUT_JITTER_S": "0.2",
            "ROLLOUT_STEP_INTERVAL_S": "0.5",
            "ROLLOUT_SHADOW_WINDOWS": "20",
            "SCENARIO_CHUNKS": "4",
            "LOG_LEVEL": "INFO",
        }

    def broker_config(self, shipped: Path = SHIPPED_BROKER_CONF) -> Path:
        """The shipped Mosquitto config with this site's paths and ports; nothing else changes
        (TLS, authentication, ACL, persistence and queue settings are kept as shipped)."""
        text = shipped.read_text()
        listeners = re.findall(r"^listener\s+(\d+)\s+(\S+)\s*$", text, re.M)
        if sorted(p for p, _ in listeners) != sorted(SHIPPED_PORTS):
            raise SystemExit(f"{shipped}: expected listeners on {sorted(SHIPPED_PORTS)}, found {listeners}")
        ports = {"node": self.node_port, "service": self.service_port}
        for port, _ in listeners:
            text = re.sub(rf"^listener\s+{port}\s+\S+\s*$", f"listener {ports[SHIPPED_PORTS[port]]} 127.0.0.1", text, flags=re.M)
        for old, new in (("/etc/mosquitto/aiot/tls/", self.tls), ("/etc/mosquitto/aiot/", self.root / "mosquitto"),
                         ("/run/mosquitto/", self.root / "run"), ("/var/lib/mosquitto/", self.root / "mosquitto-data")):
            text = text.replace(old, f"{new}/")
        blocks = re.split(r"^listener ", text, flags=re.M)[1:]
        if not blocks or not all("certfile " in b and "keyfile " in b for b in blocks):
            raise SystemExit(f"{shipped}: every listener must have TLS (certfile and keyfile)")
        if os.geteuid() == 0:
            # As root, Mosquitto would drop to the 'mosquitto' user, who cannot read this
            # private folder; on a real host the packaged service runs as that user.
            text += "\n# production check: running as root in a private folder\nuser root\n"
        path = self.root / "mosquitto" / "aiot.conf"
        path.write_text(text)
        return path
