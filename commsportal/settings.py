"""Settings for commsportal.

Every value comes from the environment through django-environ, here and nowhere else.
With nothing set, the portal runs on an embedded default (SQLite file, DEBUG on, a
development secret, Celery on kombu's filesystem transport). With DEBUG=False the
production variables below are required and a missing one stops the process with a
message naming it.
"""

import base64
import hashlib
import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"  # embedded-mode state: SQLite file, broker folders (gitignored)

env = environ.Env()
# Values already in the environment win over the file; ENV_FILE="" reads no file at all.
ENV_FILE = env.str("ENV_FILE", default=str(BASE_DIR / ".env"))
if ENV_FILE and Path(ENV_FILE).is_file():
    env.read_env(ENV_FILE)

DEBUG = env.bool("DEBUG", default=True)

REQUIRED_IN_PRODUCTION = (
    "SECRET_KEY",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "FIELD_ENCRYPTION_KEY",
    "PUBLIC_BASE_URL",
    "ALLOWED_HOSTS",
)
if not DEBUG:
    missing = [name for name in REQUIRED_IN_PRODUCTION if not env.str(name, default="").strip()]
    # The cache carries the worker's reachability checks to every web process and holds import
    # stashes: production needs a real shared one (Redis), or names its own with CACHE_URL.
    if not (env.str("REDIS_URL", default="").strip() or env.str("CACHE_URL", default="").strip()):
        missing.append("REDIS_URL")
    if missing:
        raise ImproperlyConfigured(
            "commsportal refuses to start with DEBUG=False: set " + ", ".join(missing) + " (see .env.example)."
        )

_DEV_SECRET = "dev-only-insecure-secret-key-never-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Addresses or networks of our own reverse proxies: only behind them is X-Forwarded-For read to
# find the client's address for the audit log (tenants.http.client_ip).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy.strip(), strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXIES: {_proxy!r} is not an IP address or network (CIDR); host names are not resolved."
        ) from None

# Fernet keys for secrets at rest, comma-separated: the first encrypts, all decrypt, so a
# key can be rotated (add the new key first, run `manage.py rotate_encryption_keys`,
# then drop the old one). The development key is derived from the development secret.
FIELD_ENCRYPTION_KEYS = env.list(
    "FIELD_ENCRYPTION_KEY",
    default=[base64.urlsafe_b64encode(hashlib.sha256(_DEV_SECRET.encode()).digest()).decode()],
)

# The public origin Twilio calls (scheme + host [+ prefix]); webhook signatures are checked
# against this, not against what a TLS-terminating proxy hands Django.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_celery_beat",
    "axes",
    "csp",
    "django_otp",
    "tenants",
    "messaging",
    "voice",
    "verify",
]
# The local Twilio stand-in and its `twilio_sandbox` / `demo` commands: development and tests
# only. SANDBOX_ENABLED runs it beside a DEBUG=False portal (the end-to-end test's sandbox
# process); production leaves it unset, and no production code imports the app.
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=DEBUG)
if SANDBOX_ENABLED:
    INSTALLED_APPS.append("sandbox")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Which of the user's devices (if any) verified this session: `request.user.is_verified()`.
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # No page before the second factor (issue 13): staff must enrol, users with a device enter a
    # code; webhooks, /c/, /healthz, static files, sign-in/out and its own pages are left alone.
    "verify.second_factor.middleware.SecondFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tenants.middleware.TenantMiddleware",
    # Last, as django-axes requires: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

#: Twilio's webhooks (`/webhooks/`) are served through this shorter chain (commsportal/wsgi.py):
#: no session, user, CSRF or messages work for a request that has none of them.
WEBHOOK_MIDDLEWARE = ["django.middleware.security.SecurityMiddleware"]

ROOT_URLCONF = "commsportal.urls"
WSGI_APPLICATION = "commsportal.wsgi.application"

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
                "tenants.context_processors.portal",
                "tenants.context_processors.alerts",
                "messaging.context_processors.revocations",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'commsportal.sqlite3'}"),
}
# A new connection per request costs 6-7x a pooled one: keep them open.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default has several writers (web, worker, beat): write transactions take
    # the lock when they begin and wait for it, instead of failing "database is locked" when a
    # reader upgrades; WAL lets readers go on while one process writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        transaction_mode="IMMEDIATE",
        timeout=30,
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
# The cache carries what the worker learns to the web processes (Twilio reachability for
# /healthz), so every process must see the same one: Redis when REDIS_URL is set, otherwise a
# folder on this machine (the embedded default, where the worker and the web server are
# separate processes). CACHE_URL (django-environ syntax) overrides both.
if env.str("CACHE_URL", default=""):
    CACHES = {"default": env.cache_url("CACHE_URL")}
    if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
        CACHES["default"]["BACKEND"] = "commsportal.cache.RedisCache"  # same backend, client held
    if not DEBUG and CACHES["default"]["BACKEND"].rsplit(".", 1)[-1] in ("LocMemCache", "DummyCache"):
        raise ImproperlyConfigured(
            "CACHE_URL: a per-process or dummy cache can't carry the worker's checks to the web "
            "processes nor keep an import preview between requests; use Redis (or a shared folder)."
        )
elif REDIS_URL:
    CACHES = {"default": {"BACKEND": "commsportal.cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": env.str("CACHE_DIR", default="") or str(VAR_DIR / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# How long a member invitation link (tenants.Invitation) works before the admin must send a new one.
INVITATION_VALID_DAYS = env.int("INVITATION_VALID_DAYS", default=7)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(VAR_DIR / "static"))
STATICFILES_DIRS = [BASE_DIR / "static"]
try:  # Bootstrap's CSS/JS come from the xstatic-bootstrap package, never from the repo.
    import xstatic.pkg.bootstrap as _xbootstrap

    STATICFILES_DIRS.append(("bootstrap", _xbootstrap.BASE_DIR))
except ImportError:  # pragma: no cover - declared dependency; pages degrade to unstyled
    pass

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# Twilio webhooks carry at most ~1600 chars of body plus metadata; anything far bigger is
# not Twilio.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=65_536)

SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if not DEBUG else None
# Production answers plain http with a redirect to https, except Twilio's and SendGrid's
# webhooks (a redirected POST loses its body, and the signature names the URL Twilio called)
# and the load balancer's health probe. The test stacks serve plain http on 127.0.0.1 and
# switch the redirect off.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^webhooks/", r"^healthz$"]
# Browsers remember to use https only (one year); no effect over plain http or with DEBUG on.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)

# Content-Security-Policy (django-csp), in development too so a new inline script or handler
# fails where it is written: scripts and styles come from our static files only (no inline
# <script>, on*= handlers or style= attributes; the templates test scans for them). Bootstrap's
# CSS draws its icons from data: SVGs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# Sign-in throttling (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one account
# from one client address, that pair is refused for LOGIN_COOLOFF_MINUTES, counted from the
# last failure before the lock (attempts while locked do not extend it), so someone guessing
# from elsewhere never locks the account's owner out. The address is the one the audit log
# records (our trusted-proxy rule), not whatever a client writes into X-Forwarded-For. The
# platform operator lifts a lock early from the admin (Axes > Access attempts) or with
# `manage.py axes_reset_username USERNAME` (README, "Operator commands").
AUTHENTICATION_BACKENDS = [
    "tenants.login_throttle.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "tenants.http.client_ip"
AXES_LOCKOUT_CALLABLE = "tenants.login_throttle.lockout_page"
# Failures are what the lock needs; a row per successful sign-in would grow without bound.
AXES_DISABLE_ACCESS_LOG = True

# Twilio: the parent account (creates tenants' subaccounts) and an optional base URL that
# every SDK request is sent to instead of *.twilio.com (the local sandbox, a Prism mock).
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_API_BASE_URL = env.str("TWILIO_API_BASE_URL", default="").rstrip("/")
TWILIO_HTTP_TIMEOUT = env.float("TWILIO_HTTP_TIMEOUT", default=15.0)

# Sending: how long a worker's claim on an outbound message lasts (keep it above the task's
# hard time limit, 90 s).
MESSAGING_SEND_LEASE_SECONDS = env.int("MESSAGING_SEND_LEASE_SECONDS", default=120)
# A one-time passcode not sent within this many seconds expires unsent (Twilio down too long).
MESSAGING_OTP_VALIDITY_SECONDS = env.int("MESSAGING_OTP_VALIDITY_SECONDS", default=600)

# Verify: the platform's own Verify service (staff second factor; created through the API and
# remembered when empty), the platform's SMS sender for fallback codes while Verify is down
# (an E.164 number or a Messaging Service SID of the parent account), and how long a tripped
# breaker sends fallback codes before probing Verify again.
VERIFY_PLATFORM_SERVICE_SID = env.str("VERIFY_PLATFORM_SERVICE_SID", default="")
VERIFY_PLATFORM_SMS_SENDER = env.str("VERIFY_PLATFORM_SMS_SENDER", default="")
VERIFY_BREAKER_COOLDOWN_SECONDS = env.int("VERIFY_BREAKER_COOLDOWN_SECONDS", default=60)

# SendGrid: one platform account sends every tenant's email (verify/email/). The host is
# overridable like TWILIO_API_BASE_URL (the local sandbox answers v3 mail send).
SENDGRID_API_KEY = env.str("SENDGRID_API_KEY", default="")
SENDGRID_API_HOST = env.str("SENDGRID_API_HOST", default="https://api.sendgrid.com").rstrip("/")
SENDGRID_HTTP_TIMEOUT = env.float("SENDGRID_HTTP_TIMEOUT", default=15.0)
SENDGRID_WEBHOOK_PUBLIC_KEY = env.str("SENDGRID_WEBHOOK_PUBLIC_KEY", default="")
# A signed event batch whose timestamp is further than this from now is refused (replays).
SENDGRID_WEBHOOK_MAX_SKEW_SECONDS = env.int("SENDGRID_WEBHOOK_MAX_SKEW_SECONDS", default=300)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="portal@commsportal.localhost")
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")

# Celery. Embedded default: kombu's filesystem transport under var/, so the demo runs a
# real worker and beat with no broker installed.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = Path(env.str("CELERY_FILESYSTEM_BROKER_DIR", default=str(VAR_DIR / "broker")))
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "processed_folder": str(_queue_dir / "processed"),
        "control_folder": str(_queue_dir / "control"),  # kombu's default is relative to the cwd
        "store_processed": False,
    }
    # kombu's filesystem transport fails on missing folders instead of creating them.
    for _folder in ("queue", "processed", "control"):
        (_queue_dir / _folder).mkdir(parents=True, exist_ok=True)
else:
    # Redis redelivers an unacked task after the visibility timeout: keep it well above the
    # longest task and never use ETAs anywhere near it (deferred sends live in the database).
    # Short socket timeouts: a web request that publishes a task while Redis is unreachable (or
    # accepts connections but never answers) must give up in seconds, not hang; the row it was
    # publishing for stays pending and the periodic release enqueues it once Redis is back.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
        "socket_connect_timeout": 2,
        "socket_timeout": 2,
    }
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# Two quick retries on publish (a pooled connection dropped by a Redis restart), then give up.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Every handler masks phone numbers and drops message bodies (tenants/logging.py). Django's own
# defaults are replaced rather than extended, since their handlers would run unfiltered: the
# `django` logger keeps no handler of its own (its records reach the root's console once, as in
# production before), `django.server` keeps its format, and `mail_admins` is gone (no ADMINS are
# set, and its report would carry the request's POST data, bodies included, unfiltered). The
# Celery worker's handlers get the same filter (commsportal/celery.py), gunicorn's through
# gunicorn.conf.py.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"scrub": {"()": "tenants.logging.LogScrubFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["scrub"]},
        "django.server": {"class": "logging.StreamHandler", "formatter": "django.server", "filters": ["scrub"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
        # The SDK logs request parameters (phone numbers, bodies) at INFO: keep it quiet.
        "twilio.http_client": {"level": "WARNING"},
    },
}
