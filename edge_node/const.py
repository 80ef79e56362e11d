"""Constants of fleet management (server side): enrollment, credentials, broker accounts, audit."""

from __future__ import annotations

# Random secrets: 32 bytes (256 bits) each, URL-safe base64 text.
TOKEN_BYTES = 32
SECRET_BYTES = 32
MQTT_PASSWORD_BYTES = 32
# Tokens carry a short prefix so a leaked one is recognisable in logs and scanners.
TOKEN_PREFIX = "aiot-enroll-"

# scrypt for the node's HTTP secret (RFC 7914 parameters; ~16 MiB, a few tens of ms).
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32

# Mosquitto 2.x password file: $7$<iterations>$<b64 salt>$<b64 PBKDF2-HMAC-SHA512>.
# 101 iterations and a 12-byte salt are mosquitto_passwd's own defaults; the passwords are
# 256-bit random strings, so the iteration count is not what protects them.
MOSQUITTO_HASH_ID = 7
MOSQUITTO_ITERATIONS = 101
MOSQUITTO_SALT_BYTES = 12

# Enrollment API limits.
ENROLL_MAX_BODY_BYTES = 4096

# Node ids generated at enrollment: "<site key>-<8 hex>" cut to the id's 64 characters.
GENERATED_NODE_SUFFIX_BYTES = 4

# Audit actions.
AUDIT_TOKEN_CREATED = "enrollment_token.created"
AUDIT_ENROLL = "node.enroll"
AUDIT_REVOKE = "node.revoke"
AUDIT_CREDENTIALS_ROTATED = "node.credentials_rotated"
AUDIT_BROKER_FILES = "broker.files_written"
AUDIT_NODE_AUTH = "node.auth"
AUDIT_KEYS_CREATED = "keys.created"
AUDIT_KEYS_ROTATED = "keys.rotated"
AUDIT_KEYS_REFUSED = "keys.rotation_refused"  # an admin's rotation refused, or a node refusing a keyring command
AUDIT_KEYS_NODE_UPDATED = "keys.node_updated"

# Model-signing key states (edge_node.SigningKey).
KEY_ACTIVE = "active"  # signs new models and commands; exactly one
KEY_TRUSTED = "trusted"  # an earlier key: its signatures still verify
KEY_REVOKED = "revoked"  # its signatures are refused by the platform and every node
KEY_STATES = ((KEY_ACTIVE, "active"), (KEY_TRUSTED, "trusted"), (KEY_REVOKED, "revoked"))

# Broker account kinds.
KIND_NODE = "node"
KIND_INGEST = "ingest"
KIND_PLATFORM = "platform"
