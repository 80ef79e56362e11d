"""The edge-node registry (server side). The device-side agent lives in edge_node/agent/."""

from __future__ import annotations

from django.db import models

from twins.models import key_validator


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
