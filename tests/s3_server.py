"""A moto S3 server on loopback for the backup tests (NOTES 15): buckets, the environment a
`dashvault` process needs to use one, and a way to age an object, which no S3 client can do."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tests.live import free_port

REGION = "us-east-1"
ACCESS_KEY, SECRET_KEY = "dashvault-test-access", "dashvault-test-secret"  # noqa: S105  (moto's)


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def bucket(self, *, versioned: bool = False, lock: bool = False) -> str:
        """A new, empty bucket (Object Lock turns versioning on by itself)."""
        name = f"dashvault-{secrets.token_hex(5)}"
        client = self.client()
        if lock:
            client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        else:
            client.create_bucket(Bucket=name)
        if versioned:
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def env(self, bucket: str, prefix: str = "", **extra: str) -> dict[str, str]:
        """What a `dashvault` process needs to keep its backups in `bucket`."""
        return {
            "DASHVAULT_BACKUP_S3_BUCKET": bucket,
            "DASHVAULT_BACKUP_S3_PREFIX": prefix,
            "DASHVAULT_BACKUP_S3_ENDPOINT_URL": self.endpoint,
            "DASHVAULT_BACKUP_S3_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            # Nothing from a developer's ~/.aws, no instance-metadata probes, no proxy.
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
            **extra,
        }

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        answer = self.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in answer.get("Contents", []))

    def versions(self, bucket: str, key: str) -> list[dict[str, Any]]:
        """Every version and delete marker of exactly `key`."""
        answer = self.client().list_object_versions(Bucket=bucket, Prefix=key)
        found = answer.get("Versions", []) + answer.get("DeleteMarkers", [])
        return [v for v in found if v["Key"] == key]

    def read(self, bucket: str, key: str) -> bytes:
        return bytes(self.client().get_object(Bucket=bucket, Key=key)["Body"].read())

    def backdate(self, bucket: str, key: str, age: dt.timedelta) -> None:
        """Make every version of `key` look `age` old (LastModified) by editing moto's store:
        the server runs in this process."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.core.utils import utcnow
        from moto.s3.models import s3_backends

        store = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].buckets[bucket].keys
        versions = store.getlist(key)
        assert versions, f"no object {key} in {bucket}"
        for version in versions:
            version.last_modified = utcnow() - age

    def put_fake_backup(
        self,
        bucket: str,
        prefix: str,
        when: dt.datetime,
        *,
        lock_until: dt.datetime | None = None,
    ) -> tuple[str, str]:
        """A backup's two objects as snapshot.create() leaves them, made at `when` (the payload
        is not a real database: enough for listing and pruning); returns (file, manifest)."""
        name = "dashvault-" + when.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        file, manifest = f"{name}.sqlite3.gz.age", f"{name}.json"
        payload = b"age-encryption.org/v1 fake " + name.encode()
        data = {
            "format": 1,
            "name": name,
            "created_at": when.isoformat(),
            "engine": "sqlite",
            "file": file,
            "size": len(payload),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "schema": {"accounts": "0001_initial"},
            "version": "test",
        }
        lock: dict[str, Any] = {}
        if lock_until is not None:
            lock = {"ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": lock_until}
        client = self.client()
        for key, body in ((file, payload), (manifest, json.dumps(data).encode())):
            client.put_object(
                Bucket=bucket, Key=prefix + key, Body=body, ChecksumAlgorithm="SHA256", **lock
            )
        return file, manifest


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """moto's S3 in server mode on a free loopback port, for as long as the block runs."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        server.stop()
