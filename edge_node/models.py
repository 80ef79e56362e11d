"""The edge-node registry (server side). The device-side agent lives in edge_node/agent/."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from twins.models import key_validator

from . import const


class EdgeNode(models.Model):
    node_id = models.CharField(max_length=64, unique=True, validators=[key_validator], help_text="The <node> of its MQTT topics.")
    name = models.CharField(max_length=200, blank=True)
    site = models.ForeignKey("twins.Site", on_delete=models.PROTECT, related_name="nodes")
    tags = models.CharField(max_length=200, blank=True, help_text="Comma-separated tags, used to target rollouts.")
    online = models.BooleanField(default=False)
    last_seen = models.DateTimeField(null=True, blank=True)
    status = models.JSONField(default=dict, blank=True, help_text="The node's latest retained status heartbeat.")
    status_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Credentials: only hashes are kept. The MQTT username is the node id.
    secret_hash = models.CharField(max_length=255, blank=True, help_text="scrypt hash of the node's HTTP secret (artifact downloads).")
    mqtt_password_hash = models.CharField(max_length=255, blank=True, help_text="Mosquitto $7$ (PBKDF2-SHA512) hash of the node's MQTT password.")
    enrolled_at = models.DateTimeField(null=True, blank=True)
    credentials_changed_at = models.DateTimeField(null=True, blank=True)
    # Model-signing keyring: the version the node confirmed (edge_node/key_rotation.py), when the
    # current one was last sent, and the version it refused (not sent again) with why.
    keyring_version = models.PositiveIntegerField(default=0)
    keyring_sent_at = models.DateTimeField(null=True, blank=True)
    keyring_command = models.CharField(max_length=40, blank=True, help_text="Id of the last keyring command sent to it.")
    keyring_refused_version = models.PositiveIntegerField(default=0)
    keyring_detail = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["node_id"]

    def __str__(self) -> str:
        return self.node_id


class AuditEvent(models.Model):
    """Who did what to the fleet, when: enrollment attempts, revocations, model and rollout steps."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, blank=True, help_text="Username, node id, or 'system'.")
    action = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=200, blank=True)
    ok = models.BooleanField(default=True)
    detail = models.JSONField(default=dict, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}"


class EnrollmentToken(models.Model):
    """A one-time secret an admin hands to a gateway so it can enroll. Only its SHA-256 is stored."""

    site = models.ForeignKey("twins.Site", on_delete=models.CASCADE, related_name="enrollment_tokens")
    token_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 (hex) of the token; the token itself is shown once.")
    node_id = models.CharField(max_length=64, blank=True, validators=[key_validator], help_text="Node id to give the enrolled node; blank = generated.")
    tags = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)
    used_by_addr = models.GenericIPAddressField(null=True, blank=True)
    enrolled_node = models.ForeignKey(EdgeNode, null=True, blank=True, on_delete=models.SET_NULL, related_name="enrollment_tokens")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"token #{self.pk} for {self.site_id}"


class SigningKey(models.Model):
    """One Ed25519 model-signing key. The private half is stored here, encrypted (PKCS#8 under
    MODEL_SIGNING_KEY_PASSWORD), so every web process and Celery worker on any host signs with
    the same keys without copying key files around; a database backup holds them too."""

    key_id = models.CharField(max_length=16, unique=True, help_text="First 16 hex of SHA-256 of the raw public key.")
    public_key = models.CharField(max_length=64, help_text="Raw 32-byte Ed25519 public key, base64.")
    private_key = models.TextField(help_text="Encrypted PKCS#8 PEM.")
    state = models.CharField(max_length=16, choices=const.KEY_STATES, default=const.KEY_TRUSTED)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=150, blank=True)
    source = models.CharField(max_length=300, blank=True, help_text="Generated, or the key file it was imported from.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_in = models.PositiveIntegerField(null=True, blank=True, help_text="The keyring version that revoked it.")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["state"], condition=models.Q(state=const.KEY_ACTIVE),
                                               name="edge_node_one_active_signing_key")]

    def __str__(self) -> str:
        return f"{self.key_id} ({self.state})"


class KeyringChange(models.Model):
    """One rotation of the model-signing keys: keyring ``version`` 1, 2, ... that nodes confirm."""

    version = models.PositiveIntegerField(unique=True)
    at = models.DateTimeField(auto_now_add=True)
    actor = models.CharField(max_length=150)
    added = models.CharField(max_length=16)
    revoked = models.JSONField(default=list, blank=True)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"keyring v{self.version}: +{self.added} -{','.join(self.revoked) or 'none'}"
