"""Event kinds, severities and delivery states of notifications."""

from __future__ import annotations

ALERT_OPENED = "alert.opened"
ALERT_ESCALATED = "alert.escalated"
ALERT_CLEARED = "alert.cleared"
ALERT_DEESCALATED = "alert.deescalated"
ALERT_UNACKNOWLEDGED = "alert.unacknowledged"
NODE_OFFLINE = "node.offline"
MAINTENANCE_DUE = "twin.maintenance_due"
ROLLOUT_AWAITING_APPROVAL = "rollout.awaiting_approval"
ROLLOUT_ROLLED_BACK = "rollout.rolled_back"
EVENT_KINDS = [
    (ALERT_OPENED, "Alert opened"),
    (ALERT_ESCALATED, "Alert escalated"),
    (ALERT_DEESCALATED, "Alert de-escalated"),
    (ALERT_CLEARED, "Alert cleared"),
    (ALERT_UNACKNOWLEDGED, "Alert not acknowledged in time (escalation)"),
    (NODE_OFFLINE, "Edge node offline"),
    (MAINTENANCE_DUE, "Maintenance due (RUL below threshold)"),
    (ROLLOUT_AWAITING_APPROVAL, "Rollout waiting for a second admin"),
    (ROLLOUT_ROLLED_BACK, "Rollout rolled back"),
]
# What a new subscription receives unless its owner picks otherwise (escalations are opt-in:
# they are for the group that is told when the first one did not act).
DEFAULT_KINDS = [ALERT_OPENED, ALERT_ESCALATED, ALERT_DEESCALATED, ALERT_CLEARED, NODE_OFFLINE, MAINTENANCE_DUE, ROLLOUT_AWAITING_APPROVAL, ROLLOUT_ROLLED_BACK]

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
SEVERITIES = [("info", "info"), ("warning", "warning"), ("critical", "critical")]

CHANNEL_EMAIL = "email"
CHANNEL_WEBHOOK = "webhook"
CHANNELS = [(CHANNEL_EMAIL, "Email"), (CHANNEL_WEBHOOK, "Webhook")]

FORMAT_JSON = "json"
FORMAT_CHAT = "chat"
FORMATS = [(FORMAT_JSON, "JSON (signed)"), (FORMAT_CHAT, "Slack / Teams compatible ({\"text\": ...}, signed)")]

MODE_IMMEDIATE = "immediate"
MODE_DIGEST = "digest"
MODES = [(MODE_IMMEDIATE, "Immediately (storms coalesced)"), (MODE_DIGEST, "Digest")]

PENDING = "pending"
SENT = "sent"
FAILED = "failed"
DELIVERY_STATES = [(PENDING, "pending"), (SENT, "sent"), (FAILED, "failed")]

# Webhook headers a receiver checks: HMAC-SHA256 over "<timestamp>.<body>" with the secret.
HEADER_TIMESTAMP = "X-AIoT-Timestamp"
HEADER_SIGNATURE = "X-AIoT-Signature"
HEADER_EVENT = "X-AIoT-Delivery"
