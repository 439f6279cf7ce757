"""dashvault settings: every knob is a DASHVAULT_* environment variable (docs/CONFIGURATION.md).

Two modes:
- embedded (default): SQLite under the data directory, in-process cache, secrets generated
  into the data directory with mode 0600 on first start;
- production: secrets must be given; start-up refuses missing or default ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from dashvault.lib.clientip import parse_networks
from dashvault.lib.config import envbool, envint, envlist, envsecret, envstr, generated_secret

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(envstr("DATA_DIR", "./data")).resolve()
MODE = envstr("MODE", "embedded")
if MODE not in ("embedded", "production"):
    raise ImproperlyConfigured("DASHVAULT_MODE must be embedded or production")
EMBEDDED = MODE == "embedded"
DEBUG = False  # never: error pages would leak settings and data

SECRET_KEY = envsecret("SECRET_KEY")
if not SECRET_KEY:
    if not EMBEDDED:
        raise ImproperlyConfigured("DASHVAULT_SECRET_KEY (or _FILE) is required in production")
    SECRET_KEY = generated_secret(DATA_DIR / "keys" / "secret_key", nbytes=48)
if len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure") or len(set(SECRET_KEY)) < 8:
    raise ImproperlyConfigured("DASHVAULT_SECRET_KEY is too short or a known default")

# The master keyring wraps every organization's data key (dashvault.orgs.keys). Inline keys
# (DASHVAULT_MASTER_KEYS) or a file; embedded mode generates the file on first use.
MASTER_KEYS = envstr("MASTER_KEYS")
MASTER_KEYS_FILE = envstr("MASTER_KEYS_FILE") or (
    str(DATA_DIR / "keys" / "master.keys") if EMBEDDED and not MASTER_KEYS else ""
)
if not (MASTER_KEYS or MASTER_KEYS_FILE):
    raise ImproperlyConfigured("DASHVAULT_MASTER_KEYS or DASHVAULT_MASTER_KEYS_FILE is required")

# The audit log's keys, held outside the database (dashvault.audit): the HMAC key of the hash
# chains, and the Ed25519 key that signs checkpoints into AUDIT_CHECKPOINT_DIR.
AUDIT_KEY = envsecret("AUDIT_KEY")
if not AUDIT_KEY:
    if not EMBEDDED:
        raise ImproperlyConfigured("DASHVAULT_AUDIT_KEY (or _FILE) is required in production")
    AUDIT_KEY = generated_secret(DATA_DIR / "keys" / "audit_key", nbytes=32)
if len(AUDIT_KEY) < 32:
    raise ImproperlyConfigured("DASHVAULT_AUDIT_KEY must be at least 32 characters")
AUDIT_SIGNING_KEY_FILE = envstr("AUDIT_SIGNING_KEY_FILE") or (
    str(DATA_DIR / "keys" / "audit_signing.pem") if EMBEDDED else ""
)
if not AUDIT_SIGNING_KEY_FILE:
    raise ImproperlyConfigured("DASHVAULT_AUDIT_SIGNING_KEY_FILE is required in production")
AUDIT_CHECKPOINT_DIR = envstr("AUDIT_CHECKPOINT_DIR") or str(DATA_DIR / "audit-checkpoints")
# Old entries moved out of the database (dashvault.audit.archive), encrypted, and how long the
# archive files are kept (0: for ever).
AUDIT_ARCHIVE_DIR = envstr("AUDIT_ARCHIVE_DIR") or str(DATA_DIR / "audit-archives")
AUDIT_ARCHIVE_RETENTION_DAYS = envint("AUDIT_ARCHIVE_RETENTION_DAYS", 0, minimum=0)

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
TRUSTED_PROXIES = parse_networks(envlist("TRUSTED_PROXIES"))
# Networks outbound requests (connectors) may reach although not public: an operator's own
# services inside the network. Empty: public addresses only (dashvault/lib/http.py).
OUTBOUND_ALLOWED_NETWORKS = parse_networks(envlist("OUTBOUND_ALLOWED_NETWORKS"))
# Backups (dashvault/backups): encrypted to this age public key; none are made without it.
# Made in BACKUP_DIR and kept there, or uploaded to an S3-compatible bucket when one is set
# (credentials from boto3's usual chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or
# an instance role). BACKUP_S3_LOCK_DAYS > 0 locks each backup with S3 Object Lock.
BACKUP_RECIPIENT = envstr("BACKUP_RECIPIENT")
BACKUP_DIR = Path(envstr("BACKUP_DIR", str(DATA_DIR / "backups"))).resolve()
BACKUP_EVERY_HOURS = envint("BACKUP_EVERY_HOURS", 6, minimum=1)
BACKUP_KEEP_HOURS = envint("BACKUP_KEEP_HOURS", 24)
BACKUP_KEEP_DAILY = envint("BACKUP_KEEP_DAILY", 7)
BACKUP_KEEP_WEEKLY = envint("BACKUP_KEEP_WEEKLY", 5)
BACKUP_KEEP_MONTHLY = envint("BACKUP_KEEP_MONTHLY", 13)
BACKUP_S3_BUCKET = envstr("BACKUP_S3_BUCKET")
BACKUP_S3_PREFIX = envstr("BACKUP_S3_PREFIX")
BACKUP_S3_ENDPOINT_URL = envstr("BACKUP_S3_ENDPOINT_URL")
BACKUP_S3_REGION = envstr("BACKUP_S3_REGION")
BACKUP_S3_LOCK_DAYS = envint("BACKUP_S3_LOCK_DAYS", 0, minimum=0)
if BACKUP_S3_LOCK_DAYS and not BACKUP_S3_BUCKET:
    raise ImproperlyConfigured("DASHVAULT_BACKUP_S3_LOCK_DAYS needs DASHVAULT_BACKUP_S3_BUCKET")
BACKUP_S3_LOCK_MODE = envstr("BACKUP_S3_LOCK_MODE", "COMPLIANCE")
if BACKUP_S3_LOCK_MODE not in ("COMPLIANCE", "GOVERNANCE"):
    raise ImproperlyConfigured("DASHVAULT_BACKUP_S3_LOCK_MODE must be COMPLIANCE or GOVERNANCE")
# The erasure ledger (dashvault/privacy/ledger.py): ids of erased people and deleted orgs, kept
# outside the database so restores re-apply them. Scale-out: put it on storage every app
# process shares (a copy also goes to the backup target).
ERASURE_LEDGER = Path(envstr("ERASURE_LEDGER", str(DATA_DIR / "erasure-ledger.jsonl"))).resolve()
# Background jobs (dashvault/jobs/queue.py): run each task at once in the caller instead of
# queueing it (tests; never in production).
JOBS_IMMEDIATE = envbool("JOBS_IMMEDIATE", False)
if JOBS_IMMEDIATE and not EMBEDDED:
    raise ImproperlyConfigured("DASHVAULT_JOBS_IMMEDIATE is for tests: never in production")
TLS_CERT = envstr("TLS_CERT")  # PEM files; embedded mode generates a self-signed pair
TLS_KEY = envstr("TLS_KEY")
HTTP_THREADS = envint("HTTP_THREADS", 8, minimum=1)  # WSGI worker threads per process
PUBLIC_URL = envstr("PUBLIC_URL", "https://localhost:8443")  # for links made outside a request

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # allauth's Sessions page loads its tags
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.mfa",
    "allauth.usersessions",
    "csp",
    "dashvault.orgs",
    "dashvault.accounts",
    "dashvault.dashboards",
    "dashvault.metrics",
    "dashvault.api",
    "dashvault.kiosk",
    "dashvault.sso",
    "dashvault.grants",
    "dashvault.integrations",
    "dashvault.jobs",
    "dashvault.backups",
    "dashvault.audit",
    "dashvault.server",
    "dashvault.live",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Frame denial and the CSP first, so every answer carries them: the guard's 429, the 400
    # for an unknown Host (CommonMiddleware) and static files included.
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "dashvault.policy.guard.GuardMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
    "dashvault.accounts.middleware.SessionPolicyMiddleware",
    "dashvault.policy.ipfilter.IPFilterMiddleware",
]

ROOT_URLCONF = "dashvault.urls"
WSGI_APPLICATION = "dashvault.wsgi.application"
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
                "dashvault.policy.context.principal",
            ],
        },
    },
]

DATABASE_URL = envstr("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=600)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "dashvault.sqlite3"),
            # Keep each thread's connection: reopening SQLite (and re-running the PRAGMAs)
            # cost ~2 ms of every websocket handshake.
            "CONN_MAX_AGE": 600,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": {
                # WAL lets readers run during a write; IMMEDIATE avoids upgrade deadlocks.
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                    # Deleted rows are zeroed, not left in free space: erasures leave no trace.
                    "PRAGMA secure_delete=ON;"
                ),
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = envstr("REDIS_URL")
if REDIS_URL:
    # Shared by every process: login throttling and (later) rate limits and live updates.
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["dashvault.accounts.backends.AuthenticationBackend"]
PASSWORD_HASHERS = ["dashvault.accounts.hashers.OwaspArgon2PasswordHasher"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# One-time set-password links (Django's token generator) expire after this long.
PASSWORD_RESET_TIMEOUT = envint("SET_PASSWORD_HOURS", 72, minimum=1) * 3600

LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_ADAPTER = "dashvault.accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "none"  # admins create accounts; the link proves the address
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = False  # no mail to addresses typed into "forgot password"
ACCOUNT_SESSION_REMEMBER = False
# Shown to the person themselves ("Successfully signed in as ..."); str(user) is the id, by
# design, so that logs and audit reprs never carry an address.
ACCOUNT_USER_DISPLAY = "dashvault.accounts.models.user_display"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False  # keep this session; the others end (accounts.signals)
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_RATE_LIMITS = {
    # Failed sign-ins: per client address and per account (the e-mail typed, so unknown and
    # known accounts lock alike). Stored in the cache: Redis when configured.
    "login_failed": envstr("LOGIN_FAILED_LIMIT", "10/m/ip,5/5m/key"),
    "login": "30/m/ip",
    "reset_password": "5/m/ip,3/m/key",
    "reset_password_from_key": "20/m/ip",
    "change_password": "5/m/user",
}
# Single sign-on (dashvault.sso): OpenID Connect per organization, apps built from the orgs'
# identity providers by the adapter; never sign-up through allauth, never by e-mail alone.
SOCIALACCOUNT_ADAPTER = "dashvault.sso.adapter.SocialAccountAdapter"
SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"OAUTH_PKCE_ENABLED": True}}
SOCIALACCOUNT_LOGIN_ON_GET = False  # starting a sign-in is a POST with a CSRF token
SOCIALACCOUNT_AUTO_SIGNUP = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_REQUESTS_TIMEOUT = 10
SSO_GOOGLE_URL = envstr("SSO_GOOGLE_URL", "https://accounts.google.com")
SSO_AZURE_URL = envstr("SSO_AZURE_URL", "https://login.microsoftonline.com/{tenant}/v2.0")

MFA_ADAPTER = "dashvault.accounts.mfa.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "webauthn", "recovery_codes"]
MFA_TOTP_ISSUER = "dashvault"
MFA_PASSKEY_LOGIN_ENABLED = False
USERSESSIONS_ADAPTER = "dashvault.accounts.sessions.UserSessionsAdapter"
USERSESSIONS_TRACK_ACTIVITY = False  # SessionPolicyMiddleware touches sessions itself

# Sessions: Secure, HttpOnly, SameSite cookies with the __Host- prefix (no Domain, Path=/).
# Sessions are read from the cache first (and kept in the database) when the cache is shared
# by every process that serves: Redis, or embedded mode's single process. A production server
# without Redis keeps them database-only: one process's memory cache could keep serving a
# session that another process already ended.
SESSION_ENGINE = (
    "django.contrib.sessions.backends.cached_db"
    if REDIS_URL or EMBEDDED
    else "django.contrib.sessions.backends.db"
)
SESSION_COOKIE_NAME = "__Host-dv_session"
# Messages live in the session: the default cookie storage sent them (e-mail addresses
# included, in readable base64) in a cookie of their own.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"  # Strict would drop the cookie on SSO redirects back to us
SESSION_IDLE_SECONDS = envint("SESSION_IDLE_MINUTES", 60, minimum=1) * 60
SESSION_ABSOLUTE_SECONDS = envint("SESSION_ABSOLUTE_HOURS", 12, minimum=1) * 3600
SESSION_COOKIE_AGE = SESSION_IDLE_SECONDS
CSRF_COOKIE_NAME = "__Host-dv_csrf"
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
CSRF_FAILURE_VIEW = "dashvault.server.views.csrf_failure"

# Transport and browser hardening (DESIGN C11).
SECURE_SSL_REDIRECT = True
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = envbool("HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],  # data: for the TOTP QR code
        "connect-src": [SELF],
        "font-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}

# 10,000 points with long dimensions and external ids fit; more is refused with 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_AUTOREFRESH = False

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

EMAIL_MODE = envstr("EMAIL", "file" if EMBEDDED else "smtp")
DEFAULT_FROM_EMAIL = envstr("MAIL_FROM", "dashvault@localhost")
if EMAIL_MODE == "file":
    # Embedded mode writes mail to files under the data directory instead of the console, so
    # addresses and sign-in links never land in the server's output (no personal data in logs).
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = DATA_DIR / "outbox"
elif EMAIL_MODE == "smtp":
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = envstr("SMTP_HOST", "localhost")
    EMAIL_PORT = envint("SMTP_PORT", 587, minimum=1)
    EMAIL_HOST_USER = envstr("SMTP_USER")
    EMAIL_HOST_PASSWORD = envsecret("SMTP_PASSWORD")
    EMAIL_USE_TLS = envbool("SMTP_STARTTLS", True)
else:
    raise ImproperlyConfigured("DASHVAULT_EMAIL must be file or smtp")

# Platform staff's access grants to a customer's dashboards (dashvault.grants): the longest.
GRANT_MAX_MINUTES = envint("GRANT_MAX_MINUTES", 60, minimum=1)

# The guessing guard (policy.guard): bad kiosk links and API tokens per address.
GUARD_FAILURES = envint("GUARD_FAILURES", 10, minimum=1)
GUARD_WINDOW_MINUTES = envint("GUARD_WINDOW_MINUTES", 10, minimum=1)
GUARD_BLOCK_MINUTES = envint("GUARD_BLOCK_MINUTES", 15, minimum=1)
GUARD_MAX_BLOCK_HOURS = envint("GUARD_MAX_BLOCK_HOURS", 24, minimum=1)

# Password hashing is the costliest thing an anonymous client can make us do: cap how many run
# at once (accounts.hashers) so a flood of sign-ins queues instead of starving the machine.
PASSWORD_HASH_CONCURRENCY = envint("HASH_CONCURRENCY", os.cpu_count() or 1, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact": {"()": "dashvault.lib.logfilter.RedactSecrets"},
        "refusals": {"()": "dashvault.lib.logfilter.DropRefusals"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact", "refusals"]}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    # Django's own handlers on "django" (mail to ADMINS, the DEBUG console) would see records
    # before the filters above: its lines go through the filtered console only.
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # boto3 (S3 backups) says where it found credentials on every command at INFO.
        "botocore": {"level": "WARNING"},
    },
}
