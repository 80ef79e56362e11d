"""Who is told what, how (subscriptions), what happened (events), and each message sent (deliveries)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from notify import const


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class Subscription(models.Model):
    """One user's choice: which events of which sites, at which severity, to which target, when."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscriptions")
    name = models.CharField(max_length=100)
    channel = models.CharField(max_length=16, choices=const.CHANNELS, default=const.CHANNEL_EMAIL)
    target = models.CharField(max_length=500, help_text="Email address, or the webhook's http(s) URL.")
    payload_format = models.CharField(max_length=8, choices=const.FORMATS, default=const.FORMAT_JSON)
    secret = models.CharField(max_length=64, default=new_secret, help_text="Webhooks: the HMAC-SHA256 key.")
    sites = models.ManyToManyField("twins.Site", blank=True, related_name="+", help_text="None: every site the user sees.")
    min_severity = models.CharField(max_length=16, choices=const.SEVERITIES, default="warning")
    kinds = models.JSONField(default=list, blank=True, help_text="Event kinds; empty: the defaults.")
    quiet_start = models.TimeField(null=True, blank=True, help_text="Quiet hours (the user's time zone): held until they end.")
    quiet_end = models.TimeField(null=True, blank=True)
    quiet_timezone = models.CharField(max_length=64, default="UTC")
    mode = models.CharField(max_length=16, choices=const.MODES, default=const.MODE_IMMEDIATE)
    digest_every_s = models.PositiveIntegerField(default=3600)
    last_digest_at = models.DateTimeField(null=True, blank=True)
    coalesce_until = models.DateTimeField(null=True, blank=True, help_text="End of the current coalescing window (NOTIFY_COALESCE_S).")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["user", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.channel} to {self.target})"


class Event(models.Model):
    """Something worth telling: an alert change, a node gone quiet, a maintenance date, a rollout."""

    kind = models.CharField(max_length=40, choices=const.EVENT_KINDS, db_index=True)
    site = models.ForeignKey("twins.Site", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    severity = models.CharField(max_length=16, choices=const.SEVERITIES, default="warning")
    title = models.CharField(max_length=300)
    text = models.TextField(blank=True)
    path = models.CharField(max_length=300, blank=True, help_text="The page it is about (a signed link is made from it).")
    alert = models.ForeignKey("twins.Alert", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    data = models.JSONField(default=dict, blank=True)
    dedupe_key = models.CharField(max_length=200, null=True, blank=True, unique=True, help_text="Events raised by sweeps: told once.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.title}"


class Delivery(models.Model):
    """One message (one or many coalesced events) to one subscription's target: the delivery log."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    state = models.CharField(max_length=16, choices=const.DELIVERY_STATES, default=const.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    subject = models.CharField(max_length=300, blank=True)
    events = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.state})"


class Pending(models.Model):
    """An event waiting for (or batched into) a subscription's next message."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="pending")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, null=True, blank=True, related_name="items")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subscription", "event"], name="notify_pending_once")]
        indexes = [models.Index(fields=["subscription", "delivery"])]
