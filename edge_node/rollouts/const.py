"""Constants of the model registry and rollouts (server side)."""

from __future__ import annotations

KIND_RUL = "rul"
KIND_ANOMALY = "anomaly"
KINDS = ((KIND_RUL, "RUL"), (KIND_ANOMALY, "Anomaly"))

# Rollout states.
PROPOSED = "proposed"
APPROVED = "approved"
CANARY = "canary"
PROMOTING = "promoting"
DONE = "done"
ROLLED_BACK = "rolled_back"
PAUSED = "paused"
CANCELLED = "cancelled"
ROLLOUT_STATES = [(s, s.replace("_", " ")) for s in (PROPOSED, APPROVED, CANARY, PROMOTING, DONE, ROLLED_BACK, PAUSED, CANCELLED)]
ACTIVE_STATES = (APPROVED, CANARY, PROMOTING, ROLLED_BACK)  # the driver has work to do
RUNNING_STATES = (APPROVED, CANARY, PROMOTING)
# What an admin can do in each state (the page shows exactly these buttons).
ACTIONS_BY_STATE = {
    PROPOSED: ("approve", "cancel"),
    APPROVED: ("pause", "rollback"),
    CANARY: ("pause", "rollback"),
    PROMOTING: ("pause", "rollback"),
    PAUSED: ("resume", "cancel", "rollback"),
    DONE: ("rollback",),
    ROLLED_BACK: (),
    CANCELLED: (),
}
ACTION_LABELS = {"approve": "Approve", "cancel": "Cancel", "pause": "Pause", "resume": "Resume", "rollback": "Roll back"}
ACTION_DONE = {"approve": "approved", "cancel": "cancelled", "pause": "paused", "resume": "resumed", "rollback": "rolled back"}
FINAL_STATES = (DONE, CANCELLED)

# Per-node states.
N_PENDING = "pending"
N_SENT = "sent"
N_DOWNLOADING = "downloading"
N_VERIFYING = "verifying"
N_SHADOW = "shadow"
N_PASSED = "passed"
N_FAILED = "failed"
N_SWITCHED = "switched"
N_ROLLED_BACK = "rolled_back"
N_OFFLINE = "offline_waiting"
N_NOT_SENT = "not_sent"  # final: the rollout was rolled back or cancelled before this node's turn
NODE_STATES = [(s, s.replace("_", " ")) for s in (N_PENDING, N_SENT, N_DOWNLOADING, N_VERIFYING, N_SHADOW, N_PASSED,
                                                    N_FAILED, N_SWITCHED, N_ROLLED_BACK, N_OFFLINE, N_NOT_SENT)]
# Nodes the rollout has not reached yet; when it ends early they become N_NOT_SENT.
WAITING_STATES = (N_PENDING, N_OFFLINE)
# A node in one of these holds a download slot (counts against ROLLOUT_MAX_CONCURRENT).
IN_FLIGHT_STATES = (N_SENT, N_DOWNLOADING, N_VERIFYING, N_SHADOW)
PROGRESS_STAGES = (N_DOWNLOADING, N_VERIFYING, N_SHADOW)

# The listener steps rollouts after final acks at most this often (seconds).
DIRTY_STEP_MIN_S = 0.05

# Command types on aiot/v1/<node>/cmd (args documented in edge_node/agent/deploy.py).
CMD_DEPLOY = "deploy"
CMD_ROLLBACK = "rollback"

# Failure kinds in a node's report that are load failures (counted against max_load_failures);
# anything else that fails is a health-gate failure and rolls the rollout back at once.
LOAD_FAILURE_REASONS = ("download_failed", "size_mismatch", "hash_mismatch", "bad_signature", "no_public_key",
                        "bad_manifest", "load_failed", "timeout", "unknown_key", "revoked_key", "unknown_signer",
                        "unsigned", "downgrade")
GATE_FAILURE_REASONS = ("latency_gate", "agreement_gate")

# Audit actions.
AUDIT_MODEL_REGISTERED = "model.registered"
AUDIT_MODEL_REFUSED = "model.refused"
AUDIT_ROLLOUT_PROPOSED = "rollout.proposed"
AUDIT_ROLLOUT_APPROVED = "rollout.approved"
AUDIT_ROLLOUT_REFUSED = "rollout.refused"
AUDIT_ROLLOUT_PAUSED = "rollout.paused"
AUDIT_ROLLOUT_RESUMED = "rollout.resumed"
AUDIT_ROLLOUT_CANCELLED = "rollout.cancelled"
AUDIT_ROLLOUT_ROLLBACK = "rollout.rollback"
AUDIT_ROLLOUT_PROMOTED = "rollout.promoted"
AUDIT_ROLLOUT_DONE = "rollout.done"
AUDIT_ARTIFACT_DOWNLOAD = "model.download"
AUDIT_MODEL_DOWNGRADED = "model.downgraded"  # a node switched to an older version by an explicit rollback

# Where artifacts live, under VAR_DIR.
REGISTRY_SUBDIR = ("models", "registry")
ARTIFACT_URL_PREFIX = "/api/models/"

# Bounds of a rollout's health gates (the form and the API): a p99 over a minute or more load
# failures than any fleet has nodes is a typo, not a gate.
MAX_P99_GATE_MS = 60_000.0
MAX_LOAD_FAILURES_GATE = 100_000
