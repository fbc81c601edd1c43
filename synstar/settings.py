"""Settings, read from the environment through django-environ.

With no environment at all the project runs on SQLite and an embedded (filesystem) Celery broker, so
`make run` works anywhere. `DATABASE_URL` and `CELERY_BROKER_URL` switch it to PostgreSQL and Redis.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=True)
QUICKSTART_SECRET_KEY = "insecure-quickstart-key-set-SECRET_KEY-in-production-0123456789abcdef"
SECRET_KEY = env("SECRET_KEY", default=QUICKSTART_SECRET_KEY)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
if not DEBUG:
    # Production refuses to start half-configured rather than run with a known key or answer any Host.
    if SECRET_KEY == QUICKSTART_SECRET_KEY or len(SECRET_KEY) < 32:
        raise ImproperlyConfigured("DEBUG=false needs SECRET_KEY set to a random value of 32+ characters (see .env.example).")
    if "ALLOWED_HOSTS" not in env.ENVIRON:
        raise ImproperlyConfigured("DEBUG=false needs ALLOWED_HOSTS, the host names this site answers to (see .env.example).")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "health_check",
    "django_countries",
    "allauth",
    "allauth.account",
    "synstar.accounts",
    "synstar",  # the console shell above the apps (onboarding, user admin, commands)
    "wallet",
    "billing",
    "referrals",
]

MIDDLEWARE = [
    "synstar.logging.RequestLogMiddleware",  # first: one log line per request, with its id, whatever answers
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files with hashed names, also under uvicorn
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the account's setting (synstar.accounts.middleware, below), else the switch's cookie, else Accept-Language.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "synstar.accounts.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # NUL and lone surrogates in a path, query or form: 400 before any view or lookup sees them.
    "synstar.middleware.RefuseBadCharactersMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "synstar.accounts.middleware.TimeZoneMiddleware",  # times in the user's zone (setting, else the browser's)
]

ROOT_URLCONF = "synstar.urls"
WSGI_APPLICATION = "synstar.wsgi.application"

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
                "synstar.accounts.context_processors.console",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # A short lock_timeout: a waiter gives up quickly and the service retries a bounded number of times.
    lock_timeout_ms = env.int("DB_LOCK_TIMEOUT_MS", default=3000)
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = f"-c lock_timeout={lock_timeout_ms}"
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The quickstart runs the web server and a Celery worker on one file: wait for the lock, take the
    # write lock at BEGIN so two writers never deadlock, and let readers run beside a writer (WAL).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Rate limits live in the cache: set CACHE_URL to Redis when more than one process serves requests.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# --- Accounts (django-allauth) --------------------------------------------------------------------
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", default="mandatory")
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_REDIRECT_URL = "/accounts/login/"
ACCOUNT_SIGNUP_FORM_CLASS = "synstar.accounts.forms.SignupExtraForm"
ACCOUNT_ADAPTER = "synstar.onboarding.AccountAdapter"
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[SynStar] "
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "console:dashboard"
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
# SMTP in one setting, e.g. smtp+tls://user:password@smtp.example.com:587 (django-environ's email URL).
if env("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="SynStar <no-reply@synstar.local>")
# Where pages send people who need help ("contact support"): an address, and optionally a help page.
SUPPORT_EMAIL = env("SUPPORT_EMAIL", default="")
SUPPORT_URL = env("SUPPORT_URL", default="")

# --- Product settings -----------------------------------------------------------------------------
# Credit granted once to every new account, in USD ("0" disables it).
SIGNUP_GRANT_USD = env("SIGNUP_GRANT_USD", default="0.50")
# A hold with no usage report after this long is released by the sweeper (and marked expired).
METERING_HOLD_TTL_SECONDS = env.int("METERING_HOLD_TTL_SECONDS", default=600)
# The least a metering hold freezes, in USD, whatever the request's priced upper bound ("0" disables it).
METERING_MIN_HOLD_USD = env("METERING_MIN_HOLD_USD", default="0.001")
# Reports are settled in batches: a process queues at most one batch task per window (milliseconds).
METERING_SETTLE_BATCH_WINDOW_MS = env.int("METERING_SETTLE_BATCH_WINDOW_MS", default=1000)
# A report not settled after this long (its task was lost) is settled by the sweeper.
METERING_SETTLE_STALE_SECONDS = env.int("METERING_SETTLE_STALE_SECONDS", default=30)
# A gateway key found active is trusted this long by each process before it is looked up again: a key
# deactivated in admin stops working within this time (0: looked up on every request).
GATEWAY_KEY_CACHE_SECONDS = env.int("GATEWAY_KEY_CACHE_SECONDS", default=5)
# Leases for hot accounts (PostgreSQL; README "Leases"): on/off, a lease's life between renewals, the holds
# per second one process must see on an account before it leases, and leases per account per process.
METERING_LEASES = env.bool("METERING_LEASES", default=True)  # PostgreSQL only; README "Leases"
METERING_LEASE_SECONDS = env.int("METERING_LEASE_SECONDS", default=30)
METERING_LEASE_MIN_RATE = env.int("METERING_LEASE_MIN_RATE", default=2)
METERING_LEASE_STRIPES = env.int("METERING_LEASE_STRIPES", default=4)
# Alerts and budgets (h-alerts). Token budgets (day/week/month) reset at 00:00 in this zone.
TOKEN_BUDGET_TIME_ZONE = env("TOKEN_BUDGET_TIME_ZONE", default="UTC")
# Low-balance alert: the default threshold in USD for users who set none ("0" turns the default off).
LOW_BALANCE_THRESHOLD_USD = env("LOW_BALANCE_THRESHOLD_USD", default="5")
# Customer webhooks: timeout per delivery attempt, attempts before a delivery is marked failed, and whether
# URLs may point at private or loopback addresses (only for development and tests).
ALERT_WEBHOOK_TIMEOUT_SECONDS = env.float("ALERT_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
ALERT_WEBHOOK_MAX_ATTEMPTS = env.int("ALERT_WEBHOOK_MAX_ATTEMPTS", default=8)
ALERT_WEBHOOK_ALLOW_PRIVATE = env.bool("ALERT_WEBHOOK_ALLOW_PRIVATE", default=False)
# The relay (billing/relay, the OpenAI-compatible API).
# Threads running the relay's database work (each keeps one connection): size with PostgreSQL's max_connections.
RELAY_DB_THREADS = env.int("RELAY_DB_THREADS", default=16)
RELAY_MAX_UPSTREAM_CONNECTIONS = env.int("RELAY_MAX_UPSTREAM_CONNECTIONS", default=2000)
RELAY_UPSTREAM_KEEPALIVE_SECONDS = env.float("RELAY_UPSTREAM_KEEPALIVE_SECONDS", default=4.0)
RELAY_MAX_ATTEMPTS = env.int("RELAY_MAX_ATTEMPTS", default=3)  # channels tried per request
RELAY_CHANNEL_FAILURES = env.int("RELAY_CHANNEL_FAILURES", default=3)  # in a row, to take a channel out of rotation
RELAY_CHANNEL_COOLDOWN_SECONDS = env.int("RELAY_CHANNEL_COOLDOWN_SECONDS", default=30)
RELAY_CHANNEL_REFRESH_SECONDS = env.float("RELAY_CHANNEL_REFRESH_SECONDS", default=5.0)
RELAY_MAX_BODY_BYTES = env.int("RELAY_MAX_BODY_BYTES", default=25_000_000)
RELAY_TASK_HOLD_SECONDS = env.int("RELAY_TASK_HOLD_SECONDS", default=6 * 3600)  # a video task's hold
RELAY_TASK_POLL_SECONDS = env.int("RELAY_TASK_POLL_SECONDS", default=5)
# Behind a proxy, the client's address is the last X-Forwarded-For entry (IP allow-lists use it).
RELAY_TRUST_X_FORWARDED_FOR = env.bool("RELAY_TRUST_X_FORWARDED_FOR", default=env.bool("BEHIND_TLS_PROXY", default=False))
# Top-ups (USD).
TOPUP_PRESETS_USD = env.list("TOPUP_PRESETS_USD", default=["5", "10", "20", "50", "100", "200", "500", "1000"])
TOPUP_MIN_USD = env("TOPUP_MIN_USD", default="1")
TOPUP_MAX_USD = env("TOPUP_MAX_USD", default="10000")
# Auto top-up (a saved Stripe card): the most it may charge a user per UTC day, and each user's default cap.
AUTOTOPUP_DAILY_CAP_USD = env("AUTOTOPUP_DAILY_CAP_USD", default="500")
# Orders left Pending/Paid longer than this are looked up at the provider by the reconciliation task.
ORDER_RECONCILE_AFTER_SECONDS = env.int("ORDER_RECONCILE_AFTER_SECONDS", default=600)
# Admin refunds still pending this long after their intent was recorded are asked of the provider again.
REFUND_RESUME_AFTER_SECONDS = env.int("REFUND_RESUME_AFTER_SECONDS", default=120)
# Receipts, invoices and refund requests (issue 13): our details printed on every receipt, invoice and
# credit note; invoice numbers are the prefix and a gap-free sequence; the refund target shown to users.
COMPANY_NAME = env("COMPANY_NAME", default="SynStar")
COMPANY_ADDRESS = env("COMPANY_ADDRESS", default="")
COMPANY_TAX_ID = env("COMPANY_TAX_ID", default="")
COMPANY_EMAIL = env("COMPANY_EMAIL", default="billing@synstar.local")
INVOICE_NUMBER_PREFIX = env("INVOICE_NUMBER_PREFIX", default="INV-")
CREDIT_NOTE_NUMBER_PREFIX = env("CREDIT_NOTE_NUMBER_PREFIX", default="CN-")
REFUND_TARGET_BUSINESS_DAYS = env.int("REFUND_TARGET_BUSINESS_DAYS", default=3)
# Each open order is looked up again after a back-off that doubles from BACKOFF up to BACKOFF_MAX, so every
# open order is checked at least once per BACKOFF_MAX; after its checkout lifetime (Stripe Checkout
# Sessions expire after 24 hours; Airwallex intents get the same) an unpaid order is closed as Cancelled.
ORDER_RECONCILE_BACKOFF_SECONDS = env.int("ORDER_RECONCILE_BACKOFF_SECONDS", default=120)
ORDER_RECONCILE_BACKOFF_MAX_SECONDS = env.int("ORDER_RECONCILE_BACKOFF_MAX_SECONDS", default=3600)
ORDER_CHECKOUT_LIFETIME_SECONDS = env.int("ORDER_CHECKOUT_LIFETIME_SECONDS", default=24 * 3600)
# Payment providers. With no keys at all, the sandbox provider stands in (off whenever keys are set).
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")  # tests point this at a local stand-in
AIRWALLEX_CLIENT_ID = env("AIRWALLEX_CLIENT_ID", default="")
AIRWALLEX_API_KEY = env("AIRWALLEX_API_KEY", default="")
AIRWALLEX_WEBHOOK_SECRET = env("AIRWALLEX_WEBHOOK_SECRET", default="")
AIRWALLEX_API_BASE = env("AIRWALLEX_API_BASE", default="https://api-demo.airwallex.com")
# "demo" or "prod": the environment Airwallex.js opens the hosted payment page in (prod requires https
# return URLs). The API version is pinned (x-api-version) so an account-level upgrade cannot change answers.
AIRWALLEX_ENV = env("AIRWALLEX_ENV", default="demo")
if AIRWALLEX_ENV not in ("demo", "prod"):
    raise ImproperlyConfigured(f"AIRWALLEX_ENV must be demo or prod, not {AIRWALLEX_ENV!r}.")
AIRWALLEX_API_VERSION = env("AIRWALLEX_API_VERSION", default="2024-06-30")
PAYMENTS_SANDBOX = env.bool("PAYMENTS_SANDBOX", default=True)
# Redemption codes: failed attempts allowed per window, per user and per IP.
REDEEM_FAILURES_PER_USER = env.int("REDEEM_FAILURES_PER_USER", default=5)
REDEEM_FAILURES_PER_IP = env.int("REDEEM_FAILURES_PER_IP", default=20)
REDEEM_FAILURE_WINDOW_SECONDS = env.int("REDEEM_FAILURE_WINDOW_SECONDS", default=900)
NEW_ACCOUNT_DAYS = env.int("NEW_ACCOUNT_DAYS", default=7)
# Deadlocks, serialization failures and lock timeouts are retried this many times by ledger services.
LEDGER_MAX_RETRIES = env.int("LEDGER_MAX_RETRIES", default=5)

# --- Internationalization -------------------------------------------------------------------------
# English and Simplified Chinese (catalog: locale/zh_Hans/LC_MESSAGES/django.po, compiled by
# `manage.py compile_catalogs`). Names are in their own language: the switch reads the same in both.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Indicative CNY per USD shown beside Alipay and WeChat Pay in the wallet (amounts are charged in USD);
# empty (the default) shows no CNY figure.
CNY_PER_USD = env("CNY_PER_USD", default="").strip()
if CNY_PER_USD:
    from decimal import Decimal, InvalidOperation

    try:
        _rate_ok = Decimal(CNY_PER_USD).is_finite() and Decimal(CNY_PER_USD) > 0
    except InvalidOperation:
        _rate_ok = False
    if not _rate_ok:
        raise ImproperlyConfigured(f"CNY_PER_USD must be a positive number such as 7.2 (or empty), not {CNY_PER_USD!r}.")
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))  # where collectstatic writes
# Serve static files straight from the app folders too (development, and tests serving the ASGI app
# without collectstatic); production serves only collectstatic's hashed files.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, compressed names from `collectstatic` (make run does it); served by whitenoise.
    "staticfiles": {"BACKEND": "synstar.storage.StaticStorage"},
}

# --- Behind HTTPS (production): every value from the environment, see .env.example -----------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "billing.auth.ApiTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # The stock parsers, each refusing NUL and lone surrogates in any key or value (400 invalid_characters).
    "DEFAULT_PARSER_CLASSES": ["synstar.api.JSONParser", "synstar.api.FormParser", "synstar.api.MultiPartParser"],
    "DEFAULT_SCHEMA_CLASS": "synstar.schema.AutoSchema",
    "EXCEPTION_HANDLER": "synstar.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SynStar console API",
    "DESCRIPTION": (
        "Prepaid USD credits, top-ups, API tokens and metering. Money is a decimal string of USD. "
        'Errors have one shape: {"error": {"type", "code", "message"}}.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "synstar.schema.schema_error_responses"],
}

# --- Celery ---------------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = BASE_DIR / ".celery" / "queue"
    _queue_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "store_processed": False,
        "control_folder": str(BASE_DIR / ".celery" / "control"),  # kombu's default is ./control
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # workers log through LOGGING below (JSON lines with task ids in production)
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for another worker
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE_FILENAME = str(BASE_DIR / ".celery" / "beat-schedule")
CELERY_BEAT_SCHEDULE = {
    "metering-sweep": {
        "task": "billing.tasks.metering_sweep_task",
        "schedule": timedelta(seconds=env.int("METERING_SWEEP_SECONDS", default=15)),
    },
    "orders-reconcile": {
        "task": "wallet.tasks.orders_reconcile_task",
        "schedule": timedelta(seconds=env.int("ORDER_RECONCILE_EVERY_SECONDS", default=120)),
    },
    "refunds-resume": {
        "task": "wallet.tasks.refunds_resume_task",
        "schedule": timedelta(seconds=env.int("REFUND_RESUME_EVERY_SECONDS", default=60)),
    },
    "autotopups-resume": {  # auto top-up charges whose Stripe call was cut off: asked again with the same key
        "task": "wallet.tasks.autotopups_resume_task",
        "schedule": timedelta(seconds=60),
    },
    "webhooks-retry": {
        "task": "wallet.tasks.webhooks_retry_task",
        "schedule": timedelta(seconds=env.int("WEBHOOK_RETRY_EVERY_SECONDS", default=60)),
    },
    "alert-webhooks-requeue": {
        "task": "wallet.tasks.webhook_deliveries_requeue_task",
        "schedule": timedelta(seconds=env.int("WEBHOOK_RETRY_EVERY_SECONDS", default=60)),
    },
    "relay-tasks-poll": {
        "task": "billing.tasks.relay_tasks_poll_task",
        "schedule": timedelta(seconds=env.int("RELAY_TASK_POLL_SECONDS", default=5)),
    },
    "channels-probe": {
        "task": "billing.tasks.channels_probe_task",
        "schedule": timedelta(seconds=env.int("RELAY_PROBE_EVERY_SECONDS", default=15)),
    },
    "ledger-check": {
        "task": "wallet.tasks.ledger_check",
        "schedule": timedelta(minutes=env.int("LEDGER_CHECK_MINUTES", default=60)),
    },
}

# One line per record; JSON in production (LOG_FORMAT=json, the default when DEBUG=false) so that the
# request and task ids (see synstar/logging.py) are fields a log system can search.
LOG_FORMAT = env("LOG_FORMAT", default="text" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "synstar.logging.ContextFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [req %(request_id)s task %(task_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(task_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Optional error tracker: on only when SENTRY_DSN is set (no personal data is sent).
SENTRY_DSN = env("SENTRY_DSN", default="")
if SENTRY_DSN:
    import sentry_sdk

    sentry_sdk.init(dsn=SENTRY_DSN, environment=env("SENTRY_ENVIRONMENT", default="production"), send_default_pii=False,
                    traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0))
