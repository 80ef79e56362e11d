"""Model registry (immutable signed artifacts) and rollouts (per-node state)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from . import const


class ModelArtifact(models.Model):
    """One immutable model version: the file never changes once registered (its hash is signed)."""

    name = models.CharField(max_length=100)
    version = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=const.KINDS)
    sha256 = models.CharField(max_length=64)
    signature = models.CharField(max_length=200, help_text="Ed25519 signature (base64) of the canonical manifest.")
    signing_key_id = models.CharField(max_length=16, blank=True, db_index=True,
                                      help_text="Id of the key that signed it (blank: signed before key ids; found on first use).")
    size = models.PositiveBigIntegerField()
    inputs = models.JSONField(default=list, help_text="[{name, type, shape}] as onnxruntime reports them.")
    outputs = models.JSONField(default=list)
    metadata = models.JSONField(default=dict, blank=True, help_text="meta.json the node writes beside model.onnx.")
    quantized = models.BooleanField(default=False)
    quantized_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="quantized_variants")
    size_change_pct = models.FloatField(null=True, blank=True)
    accuracy_change = models.JSONField(default=dict, blank=True, help_text="max/mean abs output difference vs the float model.")
    file_path = models.CharField(max_length=500)
    source = models.CharField(max_length=300, blank=True, help_text="Where it came from (upload, RUL run, anomaly training).")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at",)
        constraints = (models.UniqueConstraint(fields=("name", "version"), name="rollouts_artifact_name_version"),)

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"

    def manifest(self) -> dict:
        return {"name": self.name, "version": self.version, "kind": self.kind, "sha256": self.sha256, "size": self.size,
                "inputs": self.inputs, "outputs": self.outputs, "meta": self.metadata}


class Rollout(models.Model):
    model = models.ForeignKey(ModelArtifact, on_delete=models.PROTECT, related_name="rollouts")
    target_site = models.ForeignKey("twins.Site", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    target_tag = models.CharField(max_length=64, blank=True)
    target_nodes = models.JSONField(default=list, blank=True, help_text="Explicit node ids (besides site/tag).")
    canary_share = models.FloatField(default=0.1)
    max_p99_latency_ms = models.FloatField(default=50.0)
    min_agreement = models.FloatField(default=0.9, help_text="Share of live windows where old and new model agree.")
    max_load_failures = models.PositiveIntegerField(default=0)
    allow_downgrade = models.BooleanField(default=False, help_text="An explicit rollback to an older version: nodes running a "
                                          "newer one accept it (the signed command says so; audited).")
    state = models.CharField(max_length=16, choices=const.ROLLOUT_STATES, default=const.PROPOSED, db_index=True)
    paused_from = models.CharField(max_length=16, blank=True)
    reason = models.CharField(max_length=500, blank=True, help_text="Why it was rolled back, paused or cancelled.")
    proposer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"rollout {self.pk} of {self.model.label} ({self.state})"


class RolloutNode(models.Model):
    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="nodes")
    node = models.ForeignKey("edge_node.EdgeNode", on_delete=models.CASCADE, related_name="rollout_states")
    canary = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=const.NODE_STATES, default=const.N_PENDING, db_index=True)
    command_id = models.CharField(max_length=64, blank=True, db_index=True)
    previous_version = models.CharField(max_length=64, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    rollback_sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=64, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    report = models.JSONField(default=dict, blank=True)
    gate_failed = models.BooleanField(default=False, help_text="Its final report failed a health gate (judged when it arrived).")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("node__node_id",)
        constraints = (models.UniqueConstraint(fields=("rollout", "node"), name="rollouts_one_state_per_node"),)
        indexes = (models.Index(fields=("rollout", "state"), name="rollouts_node_rollout_state"),)
