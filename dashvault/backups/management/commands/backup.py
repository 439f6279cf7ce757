"""`dashvault backup keygen|create|list|prune|verify|restore`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashvault.backups import pruning, snapshot, targets


class Command(BaseCommand):
    help = "Encrypted backups of the database: make, list, prune, verify and restore them."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("keygen", help="print a new age key pair (store the private key offline)")
        sub.add_parser("create", help="take an encrypted backup now, then prune")
        sub.add_parser("list", help="every backup, with the retention rule that keeps it")
        prune = sub.add_parser("prune", help="delete the backups no retention rule keeps")
        prune.add_argument("--dry-run", action="store_true", help="only say what would go")
        for name in ("verify", "restore"):
            one = sub.add_parser(
                name,
                help="trial-restore a backup into a scratch database"
                if name == "verify"
                else "rebuild the database from a backup (stop the server first)",
            )
            one.add_argument("backup", help="the backup's name, file or manifest")
            one.add_argument(
                "--key",
                required=True,
                type=Path,
                help="file holding the age private key (or keys: every AGE-SECRET-KEY line)",
            )
        sub.choices["restore"].add_argument(
            "--replace",
            action="store_true",
            help="overwrite the existing SQLite database (its server must be stopped)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, "do_" + options["action"])(options)
        except snapshot.BackupError as exc:
            raise CommandError(str(exc)) from None

    def do_keygen(self, options: dict[str, Any]) -> None:
        public, private = snapshot.keygen()
        self.stdout.write(f"# public key: {public}\n{private}")
        self.stderr.write(
            "Set DASHVAULT_BACKUP_RECIPIENT to the public key. Keep the private key (the "
            "AGE-SECRET-KEY line) offline: it is the only way to read or restore a backup."
        )

    def do_create(self, options: dict[str, Any]) -> None:
        backup = snapshot.create()
        self.stdout.write(
            f"{backup.file}: {backup.size:,} bytes, sha256 {backup.sha256} ({backup.engine}), "
            f"in {targets.current().describe()}"
        )
        gone, held = pruning.prune()
        for backup in gone:
            self.stdout.write(f"pruned {backup.file}")
        for reason in held:
            self.stdout.write(f"not pruned yet: {reason}")

    def do_list(self, options: dict[str, Any]) -> None:
        rows = pruning.plan()
        if not rows:
            self.stdout.write(f"No backups in {targets.current().describe()}.")
        for backup, rule in rows:
            when = backup.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            self.stdout.write(
                f"{when}  {backup.file}  {backup.size:,} bytes  kept: {rule or 'no (to prune)'}"
            )

    def do_prune(self, options: dict[str, Any]) -> None:
        if options["dry_run"]:
            doomed = [b for b, rule in pruning.plan() if rule is None]
            for backup in doomed:
                self.stdout.write(f"would prune {backup.file}")
            self.stdout.write(f"{len(doomed)} backup(s) would be pruned.")
            return
        gone, held = pruning.prune()
        for backup in gone:
            self.stdout.write(f"pruned {backup.file}")
        for reason in held:
            self.stdout.write(f"not pruned yet: {reason}")
        self.stdout.write(f"{len(gone)} backup(s) pruned.")

    def do_verify(self, options: dict[str, Any]) -> None:
        backup = snapshot.find(options["backup"])
        tables = snapshot.verify(backup, snapshot.identity_from(options["key"]))
        self.stdout.write(f"{backup.file}: restores, {tables} tables, schema as recorded.")

    def do_restore(self, options: dict[str, Any]) -> None:
        backup = snapshot.find(options["backup"])
        identity = snapshot.identity_from(options["key"])
        prepared = snapshot.prepare_restore(identity)  # refuses before anything is replaced
        if backup.engine == "sqlite":
            target = Path(settings.DATABASES["default"]["NAME"])
            tables = snapshot.restore_sqlite(backup, identity, target, replace=options["replace"])
            self.stdout.write(f"Restored {backup.file} into {target} ({tables} tables).")
        else:
            snapshot.restore_postgresql(backup, identity)
            self.stdout.write(f"Restored {backup.file} into the PostgreSQL database.")
        done = snapshot.finish_restore(backup, prepared)
        self.stdout.write(
            f"Erasure ledger re-applied: {done.people} person(s) erased and {done.orgs} org(s) "
            f"deleted again. {done.keys} data key(s) taken from the escrow."
        )
        for warning in done.warnings:
            self.stderr.write(f"warning: {warning}")
