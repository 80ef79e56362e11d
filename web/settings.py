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
    # issue 18: notifications, the REST API (DRF + drf-spectacular, Swagger UI served locally)
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "notify",
    "api",
]

MIDDLEWARE = [
    "web.json_logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (ours, the admin's, Plotly.js) straight from the web process: no proxy needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Every view needs a login unless marked @login_not_required (login, health, metrics with
    # its own token, the node API with node credentials).
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "web.security_headers.SecurityHeadersMiddleware",
    "web.throttle.LoginThrottleMiddleware",
    "web.metrics.RequestMetricsMiddleware",
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

# Django's full set: similar to the user's name or e-mail, 12+ characters, not a common password, not all digits.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": env_int("PASSWORD_MIN_LENGTH", 12, 8)}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
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
# Model-signing keys live in the database (edge_node.SigningKey), their private halves as
# encrypted PKCS#8 under this passphrase; unset = derived from SECRET_KEY (changing SECRET_KEY
# then makes the stored keys unreadable: set this explicitly in production and back it up).
MODEL_SIGNING_KEY_PASSWORD = env_secret("MODEL_SIGNING_KEY_PASSWORD", "")
# Model rollouts: the first wave of nodes downloading/verifying/shadowing a model at once is
# ROLLOUT_MAX_CONCURRENT; each node that switches opens one more slot, up to
# ROLLOUT_MAX_CONCURRENT_SHARE of the rollout's nodes (driver.in_flight_limit); each node
# waits a random 0..ROLLOUT_JITTER_S before it downloads; a node silent this long after a
# command counts as a load failure; PLATFORM_PUBLIC_URL is the base URL nodes download from.
ROLLOUT_MAX_CONCURRENT = env_int("ROLLOUT_MAX_CONCURRENT", 20, 1)
ROLLOUT_MAX_CONCURRENT_SHARE = env_float("ROLLOUT_MAX_CONCURRENT_SHARE", 0.05)
ROLLOUT_JITTER_S = env_float("ROLLOUT_JITTER_S", 0.5)
ROLLOUT_ACK_TIMEOUT_S = env_float("ROLLOUT_ACK_TIMEOUT_S", 120.0)
ROLLOUT_SHADOW_WINDOWS = env_int("ROLLOUT_SHADOW_WINDOWS", 200, 1)
ROLLOUT_STEP_INTERVAL_S = env_float("ROLLOUT_STEP_INTERVAL_S", 2.0)
PLATFORM_PUBLIC_URL = env_str("PLATFORM_PUBLIC_URL", "http://127.0.0.1:8000")
# Fleet gates (edge_node/rollouts/driver.py gate_verdict): roll back when more than this share of
# the judged nodes fail a health gate, once this many (or the whole canary) were judged; a node's
# new model may be this many times slower (p99) than its current one in the same shadow run, as
# well as under the rollout's absolute p99 ceiling. A node re-measures once before it reports a
# latency failure.
ROLLOUT_GATE_MAX_FAILED_SHARE = env_float("ROLLOUT_GATE_MAX_FAILED_SHARE", 0.1)
ROLLOUT_GATE_MIN_NODES = env_int("ROLLOUT_GATE_MIN_NODES", 10, 1)
ROLLOUT_MAX_LATENCY_RATIO = env_float("ROLLOUT_MAX_LATENCY_RATIO", 3.0)

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

# --- Notifications, REST API, exports (issue 18) ------------------------------------------
# Email goes through Django's mail framework over SMTP (EMAIL_HOST unset: printed to the
# console in the demo). Webhooks are signed JSON POSTs retried with exponential backoff.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend" if env_str("EMAIL_HOST") else "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, 1, 65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT_S", 10, 1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "aiot@localhost")
NOTIFY_COALESCE_S = env_float("NOTIFY_COALESCE_S", 1.0)  # events of this window go out as one message
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 10, 1, 50)
NOTIFY_RETRY_BASE_S = env_float("NOTIFY_RETRY_BASE_S", 2.0)
NOTIFY_RETRY_MAX_S = env_float("NOTIFY_RETRY_MAX_S", 300.0)
NOTIFY_WEBHOOK_TIMEOUT_S = env_float("NOTIFY_WEBHOOK_TIMEOUT_S", 5.0)
NOTIFY_PLATFORM_PORTS = [int(p) for p in env_list("NOTIFY_PLATFORM_PORTS", ["8000", "443", "80"])]
NOTIFY_LINK_MAX_AGE_S = env_int("NOTIFY_LINK_MAX_AGE_S", 30 * 24 * 3600, 60)
NOTIFY_UNACK_AFTER_S = env_int("NOTIFY_UNACK_AFTER_S", 30 * 60, 60)
NOTIFY_NODE_OFFLINE_AFTER_S = env_int("NOTIFY_NODE_OFFLINE_AFTER_S", 10 * 60, 60)
NOTIFY_RUL_DAYS_BELOW = env_float("NOTIFY_RUL_DAYS_BELOW", 14.0)
NOTIFY_SWEEP_INTERVAL_S = env_float("NOTIFY_SWEEP_INTERVAL_S", 60.0)
CELERY_BEAT_SCHEDULE["notify-sweep"] = {"task": "notify.sweep", "schedule": NOTIFY_SWEEP_INTERVAL_S, "options": {"expires": NOTIFY_SWEEP_INTERVAL_S}}

API_THROTTLE_RATE = env_str("API_THROTTLE_RATE", "600/min")  # per token (per user for browser sessions)
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 1000, 1)
API_MAX_RANGE_DAYS = env_int("API_MAX_RANGE_DAYS", 400, 1)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.auth.TokenAuthentication", "rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.HasRole"],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttles.TokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"token": API_THROTTLE_RATE},
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.json_errors",
    "DEFAULT_PARSER_CLASSES": ["api.parsers.JSONParser", "rest_framework.parsers.FormParser", "rest_framework.parsers.MultiPartParser"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AIoT platform API",
    "DESCRIPTION": "Sites, assets, telemetry, alerts, twins, scenarios, nodes, rollouts and audit; the roles and site visibility of the UI. Authenticate with `Authorization: Token <key>` (create keys under API tokens).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],  # the schema too: a token or a login
    "SWAGGER_UI_DIST": "SIDECAR",  # served from the installed package: sites are often offline
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "PATH_CONVERTER_OVERRIDES": {"id": int},  # web/url_converters.py
    "ENUM_NAME_OVERRIDES": {"AlertStateEnum": "twins.models.Alert.State", "RolloutStateEnum": "edge_node.rollouts.const.ROLLOUT_STATES", "ScenarioRunStateEnum": "twins.scenarios.models.ScenarioRun.State"},
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

# -- Operations and hardening (issue 17): metrics, health, logs, throttling, HTTP security ----
# Node secrets (artifact downloads) are stored as HMAC-SHA256 under this key; unset = derived from
# SECRET_KEY (changing SECRET_KEY then needs nodes to re-enroll or rotate).
NODE_SECRET_HASH_KEY = env_secret("NODE_SECRET_HASH_KEY", "")
# The cache: Redis when REDIS_URL is set (shared by every web process: throttling counts there),
# else in-process memory (the one-process embedded stack).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "aiot")}
    if REDIS_URL else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
# Throttling (web/throttle.py): after THROTTLE_MAX_FAILURES failures from one address (or for
# one user name) within THROTTLE_WINDOW_S, that address/name is locked out for
# THROTTLE_LOCKOUT_S: login, admin login, enrollment and the node API. 0 failures turns it off.
THROTTLE_MAX_FAILURES = env_int("THROTTLE_MAX_FAILURES", 10, 0)
THROTTLE_WINDOW_S = env_int("THROTTLE_WINDOW_S", 300, 1)
THROTTLE_LOCKOUT_S = env_int("THROTTLE_LOCKOUT_S", 900, 1)
LOGIN_MAX_CONCURRENT_CHECKS = env_int("LOGIN_MAX_CONCURRENT_CHECKS", 1, 1)  # password checks at once per process
# Enrollment (it hands out secrets) and node downloads need HTTPS in production. Behind a
# TLS-terminating proxy set SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto (the proxy must set it).
REQUIRE_HTTPS_NODE_API = env_bool("AIOT_REQUIRE_HTTPS_NODE_API", PRODUCTION)
if env_str("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + env_str("SECURE_PROXY_SSL_HEADER").upper().replace("-", "_"), "https")
# Security headers and cookies (production defaults; each can be overridden).
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if PRODUCTION else 0, 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Plain HTTP is redirected to HTTPS in production, except the probes and the scrape (inside the network).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", PRODUCTION)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (web/security_headers.py): no inline script or style anywhere.
CSP_ENABLED = env_bool("AIOT_CSP", True)
CSP_POLICY = env_str(
    "CSP_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
# HSTS preload is a one-way decision for the operator (SECURE_HSTS_PRELOAD=1); `check --deploy` is
# otherwise clean with the production settings (tests/web/test_hardening.py runs it).
SILENCED_SYSTEM_CHECKS = env_list("SILENCED_SYSTEM_CHECKS", ["security.W021"])
# Metrics (web/metrics.py): GET /metrics needs "Authorization: Bearer <METRICS_TOKEN>" unless
# the request comes from the host itself; workers serve theirs on --metrics-port (127.0.0.1).
METRICS_TOKEN = env_secret("METRICS_TOKEN", "")
# Logs: LOG_FORMAT=json writes one JSON object a line (process, node, request id).
LOG_FORMAT = env_choice("LOG_FORMAT", "plain", ("plain", "json"))
if LOG_FORMAT == "json":
    LOGGING["formatters"]["json"] = {"()": "web.json_logs.JsonFormatter"}
    LOGGING["handlers"]["console"]["formatter"] = "json"
    LOGGING["handlers"]["console"]["filters"].append("context")
LOGGING["filters"]["context"] = {"()": "web.json_logs.ContextFilter"}
# Heartbeats of long-running processes (web/heartbeats.py): written this often; a process is
# shown down after 3 missed beats.
HEARTBEAT_INTERVAL_S = env_float("HEARTBEAT_INTERVAL_S", 15.0)
