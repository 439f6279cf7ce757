"""Test settings: the real settings module, on a throwaway data directory, fast hasher first."""

import os
import tempfile

# Always a throwaway data directory: never the developer's ./data (demo sign-ins, keys).
os.environ["DASHVAULT_DATA_DIR"] = tempfile.mkdtemp(prefix="dashvault-test-")
if os.environ.get("DASHVAULT_TEST_ON_POSTGRES"):
    os.environ["DASHVAULT_DATABASE_URL"] = os.environ.get(
        "DASHVAULT_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"
    )

from dashvault.settings import *  # noqa: E402, F403

# Argon2 at OWASP cost is tested on its own (test_hasher); everything else hashes fast.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    "dashvault.accounts.hashers.OwaspArgon2PasswordHasher",
]
# No collectstatic in unit tests: plain storage (the served server uses the manifest storage).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_AUTOREFRESH = True

# Requests served in worker threads (the ASGI router's WSGI pool) must not keep connections
# open after the test: PostgreSQL could not drop the test database.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405

# Jobs run at once in the caller: a test sees a queued sync's effect right after the commit.
JOBS_IMMEDIATE = True
