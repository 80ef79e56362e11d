"""Constants of the edge agent (defaults, limits, versions)."""

from __future__ import annotations

AGENT_VERSION = "0.3.0"

# The source plugin name of assets fed by real devices ([[devices]] point maps, edge_node/agent/field).
FIELD_PLUGIN = "field"

# Exit codes of `python -m edge_node.agent`.
EXIT_OK = 0
EXIT_CONFIG_ERROR = 2
EXIT_MODEL_ERROR = 3

# Defaults for node.toml keys that may be omitted.
DEFAULT_PUBLISH_INTERVAL_S = 1.0
DEFAULT_SAMPLE_INTERVAL_S = 1.0
DEFAULT_HEARTBEAT_INTERVAL_S = 10.0
DEFAULT_KEEPALIVE_S = 30
DEFAULT_BUFFER_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_BUFFER_MAX_ROWS = 200_000
DEFAULT_AGGREGATE_WINDOW_S = 0.0
DEFAULT_MAX_SILENCE_S = 300.0
DEFAULT_DEADBAND_REL = 0.0
RECONNECT_MIN_DELAY_S = 1
RECONNECT_MAX_DELAY_S = 30
# CONNACK codes that refuse the credentials (MQTT 3.1.1: 4, 5; MQTT 5: 0x86, 0x87): a revoked
# node. Retrying every second cannot help; it retries this rarely and says why once.
AUTH_REFUSED_CODES = (4, 5, 0x86, 0x87)
AUTH_REFUSED_RETRY_S = 300.0
# Batches published but not yet acknowledged, per node (paho's in-flight window).
MAX_INFLIGHT = 20
# Delivery: "confirmed" keeps a message until the platform confirms it (contract.Confirmation);
# "broker" deletes it on the broker's PUBACK (a platform without confirmations).
DELIVERY_MODES = ("confirmed", "broker")
# Messages sent but not yet confirmed by the platform, per node (the end-to-end window).
MAX_UNCONFIRMED = 200
# Unconfirmed messages are sent again after contract.CONFIRM_TIMEOUT_S, doubling while the
# platform stays silent (its ingest may be down: do not flood the broker's queue), up to this.
CONFIRM_TIMEOUT_MAX_S = 600.0
# On stop, how long an agent keeps sending (and waiting for confirmations) before it disconnects.
STOP_DELIVER_S = 5.0
# Rows read from the outbox per drain step.
DRAIN_CHUNK = 50

# Vibration acquisition of the simulated motor: 10 kHz, one window per sample.
VIB_SAMPLE_RATE_HZ = 10_000.0
VIB_WINDOW_S = 0.2
# Frequency bands (Hz) of the band-energy features. The bearing band holds the
# structural resonance that rolling-element impacts excite, well above shaft harmonics.
BAND_SHAFT_HZ = (10.0, 200.0)
BAND_BEARING_HZ = (1500.0, 4500.0)

# Streaming statistical detector (EWMA z-score).
EWMA_ALPHA = 0.05
EWMA_Z_THRESHOLD = 6.0
EWMA_WARMUP = 20
# An asset in the anomalous state re-announces itself at most this often.
ANOMALY_REALERT_S = 60.0
# Samples kept per metric to build an event's snippet.
SNIPPET_HISTORY = 20
SNIPPET_RAW_SAMPLES = 128

# Bytes one raw sample would cost on the wire without edge processing: high-rate
# channels as float32, slow channels as float64 (the cheapest honest baseline).
RAW_BYTES_HIGH_RATE = 4
RAW_BYTES_SLOW = 8

MODEL_CURRENT_POINTER = "current"
MODEL_FILE = "model.onnx"
MODEL_META_FILE = "meta.json"
# The platform's model-signing keys this node trusts, beside node.toml (edge_node/agent/keyring.py).
KEYRING_FILE = "keyring.json"

# The run loop never ticks more often than this (staggered sensors are batched).
MIN_TICK_S = 0.02

# Largest telemetry batch (the ingest accepts up to 5000 readings per message).
MAX_READINGS_PER_BATCH = 1000
# ...and at most this many bytes encoded (the ingest's limit is 256 KiB).
MAX_BATCH_BYTES = 128 * 1024
# An unacknowledged message older than this (while connected) is sent again from the outbox.
INFLIGHT_TIMEOUT_S = 120.0
# Normal samples in a row before an anomalous asset is declared normal again, spanning at least
# CLEAR_AFTER_S of sim time: an intermittent fault (a worn pump's cavitation bursts, seconds
# apart) is one anomaly until it has really stopped, not one per burst.
CLEAR_AFTER_SAMPLES = 5
CLEAR_AFTER_S = 300.0
# ...each with a model score at least this far under the model's threshold.
CLEAR_SCORE_MARGIN = 0.05
# Default anomaly model name for an asset type: "<asset_type>-anomaly".
DEFAULT_MODEL_SUFFIX = "-anomaly"
# Metrics the streaming detector watches per asset type (others drift by design:
# occupancy, the C-MAPSS cycle counter).
DETECT_METRICS = {
    # not vib_kurtosis: heavy-tailed from window to window (the ONNX model watches it)
    "induction_motor": ["vib_rms", "vib_band_bearing", "temperature_c", "current_a"],
    "centrifugal_pump": ["flow_m3h", "pressure_bar", "vib_rms", "temperature_c"],
    "hvac_unit": ["supply_temp_c", "co2_ppm", "energy_kw"],
    "turbofan": ["s3", "s4", "s7", "s11", "s12"],
}
