"""Deployment checks of fleet security (``manage.py check --deploy``). Registered on import:
``EdgeNodeConfig.ready()`` imports this module."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def check_fleet_security(app_configs=None, **kwargs) -> list[Warning]:
    found = []
    if settings.MQTT_EMBEDDED:
        return found
    if not settings.MQTT_PLATFORM_PASSWORD or not settings.MQTT_INGEST_PASSWORD:
        found.append(Warning(
            "The ingest or platform MQTT account has no password.",
            hint="Set MQTT_URL with the ingest user and password, and MQTT_PLATFORM_PASSWORD (or _FILE).", id="edge_node.W001"))
    if not (settings.MQTT_PASSWORD_FILE and settings.MQTT_ACL_FILE):
        found.append(Warning(
            "Mosquitto's password and ACL files are not managed by the platform: enrollments and revocations do not reach the broker.",
            hint="Set MQTT_PASSWORD_FILE and MQTT_ACL_FILE to the files Mosquitto reads.", id="edge_node.W002"))
    elif not (settings.MOSQUITTO_PID_FILE or settings.MOSQUITTO_RELOAD_CMD):
        found.append(Warning(
            "The platform writes Mosquitto's files but cannot reload it: a revoked node stays connected until the next reload.",
            hint="Set MOSQUITTO_PID_FILE (SIGHUP) or MOSQUITTO_RELOAD_CMD.", id="edge_node.W003"))
    if not settings.MODEL_SIGNING_KEY_FILE:
        found.append(Warning(
            "The model-signing key is generated into AIOT_VAR_DIR/keys/: every web host must share it and it must be backed up.",
            hint="Set MODEL_SIGNING_KEY_FILE to a managed Ed25519 PEM key.", id="edge_node.W004"))
    return found
