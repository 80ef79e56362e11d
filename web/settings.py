"""Settings for the AIoT platform, all read from the environment (see README: Configuration).

Unset means the embedded default: SQLite (WAL), the in-memory channel layer, an MQTT broker
started in-process (amqtt) and Celery running in-process. Set AIOT_PRODUCTION=1 for a
deployment: it refuses to start with DEBUG on, the default secret or no ALLOWED_HOSTS.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from web import production_guard
from web.env import channel_layers_from_url, database_from_url, env_bool, env_choice, env_float, env_int, env_list, env_secret, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("AIOT_VAR_DIR", str(BASE_DIR / "var")))

DEFAULT_SECRET = "insecure-embedded-default-secret-change-me"
PRODUCTION = env_bool("AIOT_PRODUCTION", False)
SECRET_KEY = env_secret("SECRET_KEY", DEFAULT_SECRET)
# Off unless asked for (DEBUG=1): the demo and tests show the friendly 404/403/500 pages a user
# meets, not Django's debug pages listing every URL pattern.
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

if PRODUCTION:
    if DEBUG:
        raise ImproperlyConfigured("AIOT_PRODUCTION=1 refuses DEBUG=1: unset DEBUG or set DEBUG=0")
    production_guard.check_secret(SECRET_KEY, DEFAULT_SECRET)
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("AIOT_PRODUCTION=1 needs ALLOWED_HOSTS (comma-separated host names)")
    # The web process's own HTTPS (daphne -e ssl:...:privateKey=${TLS_KEY_FILE}:certKey=${TLS_CERT_FILE});
    # unset behind a TLS-terminating proxy.
    production_guard.check_server_certificate(env_str("TLS_CERT_FILE"), env_str("TLS_KEY_FILE"), ALLOWED_HOSTS)
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "web",
    "twins",
    "twins.scenarios",
    "edge_node",
    "edge_node.rollouts",
    "ingest",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (ours, the admin's, Plotly.js) straight from the web process: no proxy needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "web.middleware.LoginRequiredMiddleware",
]

ROOT_URLCONF = "web.urls"
CSRF_FAILURE_VIEW = "web.views.csrf_failure"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "web.roles.roles_context",
            ]
        },
    }
]
ASGI_APPLICATION = "web.asgi.application"
WSGI_APPLICATION = None

DATABASE_URL = env_url("DATABASE_URL", ("postgres", "postgresql", "sqlite"))
DATABASES = {"default": database_from_url(DATABASE_URL, VAR_DIR / "aiot.sqlite3")}
if env_secret("DATABASE_PASSWORD"):  # or DATABASE_PASSWORD_FILE: keeps the password out of the URL
    DATABASES["default"]["PASSWORD"] = env_secret("DATABASE_PASSWORD")
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

# Static files are served by WhiteNoise from the web process. Production runs `collectstatic`
# into STATIC_ROOT (hashed names, gzip; served with a year's cache); the embedded default and
# the tests serve straight from the app folders. Plotly.js comes from the installed plotly
# package (web.static_finders.PlotlyFinder: sites are often offline, no CDN).
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "web.static_finders.PlotlyFinder",
]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_STORAGE = env_choice("STATIC_STORAGE", "manifest" if PRODUCTION else "plain", ("manifest", "plain"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage" if STATIC_STORAGE == "manifest" else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", not PRODUCTION)
if WHITENOISE_USE_FINDERS:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise also serves it; it warns when it is missing
WHITENOISE_MAX_AGE = env_int("STATIC_MAX_AGE_S", 3600, 0)  # files without a hash in their name

# Channels: Redis when REDIS_URL is set, otherwise in-memory (one process only); the kinds
# of Redis layer are explained in web.env.channel_layers_from_url.
REDIS_URL = env_url("REDIS_URL", ("redis", "rediss", "unix"))
CHANNEL_LAYER_KIND = env_choice("CHANNEL_LAYER", "pubsub", ("pubsub", "lists"))
CHANNEL_LAYERS = channel_layers_from_url(
    REDIS_URL, CHANNEL_LAYER_KIND, env_str("CHANNEL_LAYER_PREFIX", "asgi"), env_int("CHANNEL_LAYER_MAX_CONNECTIONS", 2000, 10)
)

# Celery: Redis when REDIS_URL is set, otherwise an in-process transport that the embedded
# runner drives with a worker thread (see web/embedded.py).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL or "cache+memory://")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_EMBEDDED = not REDIS_URL and CELERY_BROKER_URL == "memory://"
# The in-process transport polls; 50 ms keeps a scenario's chunks from idling. On Redis, a
# chunk whose worker was killed is redelivered after the visibility timeout.
CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.05} if CELERY_EMBEDDED else {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT_S", 300, 30)}

# What-if scenarios: replications are split into this many Celery chunks.
SCENARIO_CHUNKS = env_int("SCENARIO_CHUNKS", 8, 1, 64)
SCENARIO_QUEUE = env_str("SCENARIO_QUEUE", "")

# MQTT: the broker URL; unset means the embedded amqtt broker on AIOT_EMBEDDED_MQTT_PORT.
MQTT_URL = env_url("MQTT_URL", ("mqtt", "mqtts", "tcp", "ssl"))
MQTT_EMBEDDED = not MQTT_URL
MQTT_EMBEDDED_PORT = env_int("AIOT_EMBEDDED_MQTT_PORT", 1884, 1, 65535)
if MQTT_EMBEDDED:
    MQTT_URL = f"mqtt://127.0.0.1:{MQTT_EMBEDDED_PORT}"
MQTT_CA_FILE = env_str("MQTT_CA_FILE", "")
production_guard.check_ca_file(MQTT_CA_FILE)
MQTT_CLIENT_ID_PREFIX = env_str("MQTT_CLIENT_ID_PREFIX", "aiot")

# Fleet security (edge_node): broker accounts, Mosquitto files, enrollment, model signing.
# Service accounts: the ingest worker's defaults to MQTT_URL's user and password; in the
# embedded demo both service passwords are derived from SECRET_KEY (never in production).
_mqtt_parts = urlsplit(MQTT_URL)
MQTT_INGEST_USERNAME = env_str("MQTT_INGEST_USERNAME", unquote(_mqtt_parts.username or "") or "aiot-ingest")
MQTT_INGEST_PASSWORD = env_secret("MQTT_INGEST_PASSWORD", unquote(_mqtt_parts.password or ""))
MQTT_PLATFORM_USERNAME = env_str("MQTT_PLATFORM_USERNAME", "aiot-platform")
MQTT_PLATFORM_PASSWORD = env_secret("MQTT_PLATFORM_PASSWORD", "")
if MQTT_EMBEDDED:
    MQTT_INGEST_PASSWORD = MQTT_INGEST_PASSWORD or hmac.new(SECRET_KEY.encode(), b"embedded-mqtt-ingest", "sha256").hexdigest()
    MQTT_PLATFORM_PASSWORD = MQTT_PLATFORM_PASSWORD or hmac.new(SECRET_KEY.encode(), b"embedded-mqtt-platform", "sha256").hexdigest()
MQTT_NODE_BROKER_URL = env_url("MQTT_NODE_BROKER_URL", ("mqtt", "mqtts"))  # handed to nodes at enrollment
if PRODUCTION:
    production_guard.check_required({"DATABASE_URL": DATABASE_URL, "REDIS_URL": REDIS_URL, "MQTT_URL": "" if MQTT_EMBEDDED else MQTT_URL})
    ALLOW_PLAIN_MQTT = env_bool("AIOT_ALLOW_PLAIN_MQTT", False)
    production_guard.check_broker_tls("MQTT_URL", MQTT_URL, ALLOW_PLAIN_MQTT)
    production_guard.check_broker_tls("MQTT_NODE_BROKER_URL", MQTT_NODE_BROKER_URL, ALLOW_PLAIN_MQTT)
MQTT_PASSWORD_FILE = env_str("MQTT_PASSWORD_FILE", "")
MQTT_ACL_FILE = env_str("MQTT_ACL_FILE", "")
try:  # octal, like chmod: the broker's user must be able to read the files
    MQTT_BROKER_FILE_MODE = int(env_str("MQTT_BROKER_FILE_MODE", "640"), 8) & 0o777
except ValueError:
    raise ImproperlyConfigured("MQTT_BROKER_FILE_MODE must be an octal file mode such as 640") from None
MOSQUITTO_PID_FILE = env_str("MOSQUITTO_PID_FILE", "")
MOSQUITTO_RELOAD_CMD = env_str("MOSQUITTO_RELOAD_CMD", "")
ENROLLMENT_TOKEN_TTL_S = env_int("ENROLLMENT_TOKEN_TTL_S", 24 * 3600, 60, 30 * 24 * 3600)
ENROLLMENT_PUBLIC_URL = env_str("ENROLLMENT_PUBLIC_URL", "")  # the platform's URL as nodes reach it
MODEL_SIGNING_KEY_FILE = env_str("MODEL_SIGNING_KEY_FILE", "")
# Model rollouts: at most this many nodes download/verify/shadow a model at once; each node
# waits a random 0..ROLLOUT_JITTER_S before it downloads; a node silent this long after a
# command counts as a load failure; PLATFORM_PUBLIC_URL is the base URL nodes download from.
ROLLOUT_MAX_CONCURRENT = env_int("ROLLOUT_MAX_CONCURRENT", 20, 1)
ROLLOUT_JITTER_S = env_float("ROLLOUT_JITTER_S", 0.5)
ROLLOUT_ACK_TIMEOUT_S = env_float("ROLLOUT_ACK_TIMEOUT_S", 120.0)
ROLLOUT_SHADOW_WINDOWS = env_int("ROLLOUT_SHADOW_WINDOWS", 200, 1)
ROLLOUT_STEP_INTERVAL_S = env_float("ROLLOUT_STEP_INTERVAL_S", 2.0)
PLATFORM_PUBLIC_URL = env_str("PLATFORM_PUBLIC_URL", "http://127.0.0.1:8000")

# Ingest tuning.
INGEST_MAX_PAYLOAD_BYTES = env_int("INGEST_MAX_PAYLOAD_BYTES", 256 * 1024, 1024)
INGEST_MAX_READINGS_PER_MESSAGE = env_int("INGEST_MAX_READINGS_PER_MESSAGE", 5000, 1)
INGEST_BATCH_MAX_MESSAGES = env_int("INGEST_BATCH_MAX_MESSAGES", 500, 1)
INGEST_BATCH_MAX_WAIT_MS = env_int("INGEST_BATCH_MAX_WAIT_MS", 50, 1)
INGEST_MAX_PAST_SECONDS = env_int("INGEST_MAX_PAST_SECONDS", 30 * 24 * 3600, 60)
INGEST_MAX_FUTURE_SECONDS = env_int("INGEST_MAX_FUTURE_SECONDS", 300, 1)
INGEST_DEAD_LETTER_RAW_BYTES = env_int("INGEST_DEAD_LETTER_RAW_BYTES", 2048, 0)
INGEST_LIVE_INTERVAL_S = env_float("INGEST_LIVE_INTERVAL_S", 0.5)
INGEST_SESSION_EXPIRY_S = env_int("INGEST_SESSION_EXPIRY_S", 7 * 24 * 3600, 0)
# Confirm stored seqs to each node (end-to-end delivery; agents keep messages until confirmed).
INGEST_CONFIRM = env_bool("INGEST_CONFIRM", True)
# A worker that cannot reach the database waits, doubling from the first to the last, for as long as it takes.
INGEST_DB_WAIT_MIN_S = max(0.001, env_float("INGEST_DB_WAIT_MIN_S", 0.5))
INGEST_DB_WAIT_MAX_S = max(0.001, env_float("INGEST_DB_WAIT_MAX_S", 15.0))
TELEMETRY_RETENTION_DAYS = env_int("TELEMETRY_RETENTION_DAYS", 90, 1)
TELEMETRY_PARTITION_DAYS = env_int("TELEMETRY_PARTITION_DAYS", 1, 1, 31)
# TimescaleDB compresses chunks only past the accepted past window (plus a chunk): a late reading
# never lands in a compressed chunk (default: 31 days with the default 30-day window).
TELEMETRY_COMPRESS_AFTER_DAYS = env_int("TELEMETRY_COMPRESS_AFTER_DAYS", -(-INGEST_MAX_PAST_SECONDS // 86400) + 1, 1)
# Where telemetry lives on PostgreSQL (ingest/timeseries/store.py): auto (TimescaleDB when usable),
# timescale (required), postgres (native partitions, even where TimescaleDB is available).
TELEMETRY_STORE = env_choice("TELEMETRY_STORE", "auto", ("auto", "timescale", "postgres"))
TELEMETRY_CHUNK_HOURS = env_int("TELEMETRY_CHUNK_HOURS", 24, 1, 24 * 31)  # TimescaleDB chunk interval
TELEMETRY_COPY = env_bool("TELEMETRY_COPY", True)  # binary COPY for writes (0: multi-row INSERT)

# Alerts: one that clears and comes back within this many seconds is re-opened (the same row,
# its acknowledgement kept when it returns no worse), not opened anew. 0 turns that off.
ALERT_REOPEN_WINDOW_S = env_int("ALERT_REOPEN_WINDOW_S", 1800, 0)

# --- Scale-out (issue 16): state with one owner across processes and hosts -----------------
# Alert rules evaluate each node's readings in seq order whichever worker stored them
# (twins/alert_state.py); a seq missing this long (not stored, not dead-lettered) is skipped.
ALERT_SEQ_GAP_WAIT_S = env_float("ALERT_SEQ_GAP_WAIT_S", 30.0)
# Maintenance (ingest/maintenance.py): one periodic job under an advisory lock (celery beat;
# a thread in the embedded stack). Each bookkeeping table has its own horizon.
MAINTENANCE_INTERVAL_S = env_float("MAINTENANCE_INTERVAL_S", 3600.0)
KEEP_RECEIVED_MESSAGE_IDS_DAYS = env_int("KEEP_RECEIVED_MESSAGE_IDS_DAYS", 14, 1)  # the redelivery window
KEEP_TWIN_SNAPSHOTS_FULL_DAYS = env_int("KEEP_TWIN_SNAPSHOTS_FULL_DAYS", 7, 1)  # then one per asset and hour
KEEP_DEAD_LETTERS_DAYS = env_int("KEEP_DEAD_LETTERS_DAYS", 30, 1)
KEEP_EDGE_EVENTS_DAYS = env_int("KEEP_EDGE_EVENTS_DAYS", 90, 1)
KEEP_AUDIT_EVENTS_DAYS = env_int("KEEP_AUDIT_EVENTS_DAYS", 730, 1)  # kept longest

# Digital twins: how often health and RUL are recomputed from telemetry (celery beat in
# production; a refresh thread in the embedded stack), and whether the embedded stack trains
# the demo asset types' missing RUL models in the background on start.
TWIN_REFRESH_INTERVAL_S = env_float("TWIN_REFRESH_INTERVAL_S", 15.0)
if TWIN_REFRESH_INTERVAL_S < 1.0:
    raise ImproperlyConfigured("TWIN_REFRESH_INTERVAL_S must be >= 1")
TWIN_TRAIN_DEMO_MODELS = env_bool("TWIN_TRAIN_DEMO_MODELS", True)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")  # beat's last-run times
CELERY_BEAT_SCHEDULE = {
    # A refresh that would start after the next one is due is dropped, never queued up.
    "twins-refresh": {"task": "twins.refresh_twins", "schedule": TWIN_REFRESH_INTERVAL_S, "options": {"expires": TWIN_REFRESH_INTERVAL_S}},
    "maintenance": {"task": "ingest.maintain", "schedule": MAINTENANCE_INTERVAL_S, "options": {"expires": MAINTENANCE_INTERVAL_S}},
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # A refused request (4xx) is one log line, without the traceback Django attaches to it.
    "filters": {"refusals_one_line": {"()": "web.log_filters.RefusalsOneLine"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["refusals_one_line"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's default config gives "django" its own console handler too (DEBUG only):
        # every record once, through the root handler.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.channels.server": {"level": "WARNING"},
        "amqtt": {"level": "WARNING"},
        "transitions": {"level": "WARNING"},
    },
}
