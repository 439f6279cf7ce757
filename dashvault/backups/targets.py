"""Where backups are kept: a local folder, or an S3-compatible bucket.

Both hold the same objects under the same names: each backup's encrypted file and its manifest
(written last), the data-key escrow (`datakeys.age`, rewritten) and the copy of the erasure
ledger (`erasure-ledger.jsonl`, rewritten). A backup is made in the local folder
(settings.BACKUP_DIR) in any case; the S3 target then uploads it and removes the local copy.

With S3 Object Lock (settings.BACKUP_S3_LOCK_DAYS > 0; the bucket must have it enabled) each
backup's file and manifest are locked until that many days after the backup: nobody, not even
dashvault's own credentials, can delete or overwrite them before then, so ransomware holding the
server cannot destroy the history. Pruning leaves a locked backup for a later run.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings

from dashvault.backups.errors import BackupError
from dashvault.lib.files import write_atomically

PART = ".part"  # a file being written; never a backup


@dataclass(frozen=True)
class Stored:
    name: str
    size: int
    modified: float  # POSIX time


class Target(Protocol):
    def describe(self) -> str: ...
    def put_file(self, local: Path, name: str, *, lock_until: dt.datetime | None) -> None: ...
    def put_bytes(self, name: str, data: bytes, *, lock_until: dt.datetime | None) -> None: ...
    def get_bytes(self, name: str) -> bytes | None: ...
    def fetch(self, name: str, scratch: Path) -> Path: ...
    def listing(self, prefix: str) -> list[Stored]: ...
    def delete(self, name: str) -> None: ...
    def incomplete_uploads(self, older_than: float) -> int: ...


def staging() -> Path:
    """The local folder backups are made in (and kept in, for the folder target)."""
    folder = Path(settings.BACKUP_DIR)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def current() -> Target:
    if settings.BACKUP_S3_BUCKET:
        return _s3_target(
            settings.BACKUP_S3_BUCKET,
            settings.BACKUP_S3_PREFIX,
            settings.BACKUP_S3_ENDPOINT_URL,
            settings.BACKUP_S3_REGION,
        )
    return FolderTarget(Path(settings.BACKUP_DIR))


def lock_until(created_at: dt.datetime) -> dt.datetime | None:
    days = int(settings.BACKUP_S3_LOCK_DAYS)
    return created_at + dt.timedelta(days=days) if settings.BACKUP_S3_BUCKET and days else None


class FolderTarget:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def describe(self) -> str:
        return str(self.folder)

    def put_file(self, local: Path, name: str, *, lock_until: dt.datetime | None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(local, 0o600)
        if local.parent.resolve() == self.folder.resolve():
            os.replace(local, self.folder / name)
        else:
            shutil.move(local, self.folder / name)

    def put_bytes(self, name: str, data: bytes, *, lock_until: dt.datetime | None) -> None:
        write_atomically(self.folder / name, data)

    def get_bytes(self, name: str) -> bytes | None:
        try:
            return (self.folder / name).read_bytes()
        except FileNotFoundError:
            return None

    def fetch(self, name: str, scratch: Path) -> Path:
        path = self.folder / name
        if not path.exists():
            raise BackupError(f"{name} is missing from {self.folder}.")
        return path  # read in place: no copy

    def listing(self, prefix: str) -> list[Stored]:
        found = []
        for path in self.folder.glob(prefix + "*"):
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            found.append(Stored(path.name, info.st_size, info.st_mtime))
        return sorted(found, key=lambda s: s.name)

    def delete(self, name: str) -> None:
        path = self.folder / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def incomplete_uploads(self, older_than: float) -> int:
        return 0


@cache
def _s3_target(bucket: str, prefix: str, endpoint: str, region: str) -> S3Target:
    return S3Target(bucket, prefix, endpoint, region)


class S3Target:
    """An S3-compatible bucket through boto3. Credentials come from boto3's usual chain
    (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, or an instance role), never from
    dashvault's settings, so they never sit beside the database's."""

    def __init__(self, bucket: str, prefix: str, endpoint: str, region: str) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint or None,
            region_name=region or None,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10),
        )

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise BackupError(
                f"S3 {what} failed on {self.describe()}: {error.get('Code')} "
                f"{error.get('Message', '')}".strip()
            ) from None
        except BotoCoreError as exc:
            raise BackupError(f"S3 {what} failed on {self.describe()}: {exc}") from None

    def _lock(self, lock_until: dt.datetime | None) -> dict[str, Any]:
        if lock_until is None:
            return {}
        return {
            "ObjectLockMode": settings.BACKUP_S3_LOCK_MODE,
            "ObjectLockRetainUntilDate": lock_until,
        }

    def put_file(self, local: Path, name: str, *, lock_until: dt.datetime | None) -> None:
        from boto3.exceptions import S3UploadFailedError
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        # Multipart in 64 MiB parts; each part's checksum is verified by the service.
        transfer = TransferConfig(multipart_chunksize=64 * 1024 * 1024)
        extra = {"ChecksumAlgorithm": "SHA256", **self._lock(lock_until)}
        try:
            self.client.upload_file(
                str(local), self.bucket, self.prefix + name, ExtraArgs=extra, Config=transfer
            )
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            raise BackupError(f"S3 upload of {name} to {self.describe()} failed: {exc}") from None
        local.unlink(missing_ok=True)

    def put_bytes(self, name: str, data: bytes, *, lock_until: dt.datetime | None) -> None:
        self._call(
            "upload",
            self.client.put_object,
            Key=self.prefix + name,
            Body=data,
            ChecksumAlgorithm="SHA256",
            **self._lock(lock_until),
        )
        if lock_until is None:
            self._drop_old_versions(name)

    def _drop_old_versions(self, name: str) -> None:
        """A rewritten object (escrow, ledger copy) keeps no older versions in a versioned
        bucket: a deleted org's data key must not survive as an old version."""
        pages = self.client.get_paginator("list_object_versions")
        key = self.prefix + name
        for page in pages.paginate(Bucket=self.bucket, Prefix=key):
            for version in page.get("Versions", []) + page.get("DeleteMarkers", []):
                if version["Key"] == key and not version.get("IsLatest"):
                    self._call(
                        "delete",
                        self.client.delete_object,
                        Key=key,
                        VersionId=version["VersionId"],
                    )

    def get_bytes(self, name: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise BackupError(f"S3 download of {name} failed: {exc}") from None
        return bytes(answer["Body"].read())

    def fetch(self, name: str, scratch: Path) -> Path:
        from botocore.exceptions import BotoCoreError, ClientError

        local = scratch / name
        try:
            self.client.download_file(self.bucket, self.prefix + name, str(local))
        except (ClientError, BotoCoreError) as exc:
            raise BackupError(f"S3 download of {name} failed: {exc}") from None
        return local

    def listing(self, prefix: str) -> list[Stored]:
        found = []
        pages = self.client.get_paginator("list_objects_v2")
        try:
            for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    found.append(
                        Stored(
                            item["Key"][len(self.prefix) :],
                            int(item["Size"]),
                            item["LastModified"].timestamp(),
                        )
                    )
        except Exception as exc:  # botocore's errors, named in the message
            raise BackupError(f"S3 listing of {self.describe()} failed: {exc}") from None
        return sorted(found, key=lambda s: s.name)

    def delete(self, name: str) -> None:
        """Every version of the object; raises BackupError while Object Lock holds one."""
        pages = self.client.get_paginator("list_object_versions")
        key = self.prefix + name
        versions = [
            version["VersionId"]
            for page in pages.paginate(Bucket=self.bucket, Prefix=key)
            for version in page.get("Versions", []) + page.get("DeleteMarkers", [])
            if version["Key"] == key
        ]
        if not versions:  # an unversioned bucket lists none
            self._call("delete", self.client.delete_object, Key=key)
        for version_id in versions:
            self._call("delete", self.client.delete_object, Key=key, VersionId=version_id)

    def incomplete_uploads(self, older_than: float) -> int:
        """Abort multipart uploads a killed backup left (they are invisible, but billed)."""
        answer = self._call(
            "listing of uploads", self.client.list_multipart_uploads, Prefix=self.prefix
        )
        aborted = 0
        for upload in answer.get("Uploads", []):
            if upload["Initiated"].timestamp() < older_than:
                self._call(
                    "abort",
                    self.client.abort_multipart_upload,
                    Key=upload["Key"],
                    UploadId=upload["UploadId"],
                )
                aborted += 1
        return aborted
