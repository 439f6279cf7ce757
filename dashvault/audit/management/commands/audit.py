from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashvault.audit import archive, chain, checkpoints
from dashvault.orgs.queries import org_by_ref


class Command(BaseCommand):
    help = (
        "The tamper-evident audit log. `audit verify [--org ORG]` checks every chain (or one "
        "organization's) against the audit key and the signed checkpoints and names the first "
        "bad entry of each broken chain (exit status 1). `audit checkpoint` signs the chains' "
        "current heads into a new checkpoint now (the server also does it hourly and every "
        "10,000 entries). `audit archive --before DATE` moves older entries into encrypted "
        "files that `audit verify` (or `audit verify --archive FILE`) still checks; `audit "
        "prune` deletes archive files past DASHVAULT_AUDIT_ARCHIVE_RETENTION_DAYS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="verify the chains")
        verify.add_argument("--org", help="only this organization (id or exact name)")
        verify.add_argument("--archive", help="verify one archive file instead")
        sub.add_parser("checkpoint", help="write a signed checkpoint now")
        move = sub.add_parser(
            "archive", help="move entries older than a date into encrypted archive files"
        )
        move.add_argument("--before", required=True, help="a date, YYYY-MM-DD (UTC)")
        move.add_argument("--org", help="only this organization (id or exact name)")
        sub.add_parser("prune", help="delete archive files past the retention period")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "archive":
            return self._archive(options)
        if options["action"] == "prune":
            pruned = archive.prune()
            self.stdout.write(f"Deleted {pruned} archive file(s) past retention.")
            return None
        if options["action"] == "verify" and options.get("archive"):
            return self._verify_archive(Path(options["archive"]))
        if options["action"] == "checkpoint":
            try:
                written = checkpoints.write_checkpoint()
            except checkpoints.CheckpointError as exc:
                raise CommandError(f"Checkpoints do not verify: {exc}") from None
            if written is None:
                self.stdout.write("Nothing new since the last checkpoint.")
            else:
                self.stdout.write(
                    f"Checkpoint {written.number} signed: {len(written.chains)} chain(s)."
                )
            return
        org_id = None
        if options.get("org"):
            org = org_by_ref(options["org"])
            if org is None:
                raise CommandError(f"No single organization matches {options['org']!r}.")
            org_id = org.pk
        try:
            lengths, problems = chain.verify(org_id)
        except checkpoints.CheckpointError as exc:
            raise CommandError(f"Checkpoints do not verify: {exc}") from None
        broken = {problem.chain for problem in problems}
        for name, length in lengths.items():
            if name not in broken:
                self.stdout.write(f"chain {name}: ok, {length} entries")
        for problem in problems:
            self.stderr.write(f"FAILED {problem}")
        if problems:
            raise CommandError(f"{len(problems)} chain(s) failed verification.")
        self.stdout.write(f"All {len(lengths)} chain(s) verify.")

    def _org_id(self, ref: str | None) -> object:
        if not ref:
            return None
        org = org_by_ref(ref)
        if org is None:
            raise CommandError(f"No single organization matches {ref!r}.")
        return org.pk

    def _archive(self, options: dict[str, Any]) -> None:
        try:
            day = dt.date.fromisoformat(options["before"])
        except ValueError:
            raise CommandError("--before must be a date, YYYY-MM-DD.") from None
        before = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
        try:
            made = archive.archive(before, org_id=self._org_id(options.get("org")))
        except archive.ArchiveError as exc:
            raise CommandError(str(exc)) from None
        for record in made:
            self.stdout.write(
                f"chain {record.chain}: entries {record.first_seq}-{record.last_seq} "
                f"archived to {record.file}"
            )
        if not made:
            self.stdout.write(f"No entries before {day}.")
        archive.prune()

    def _verify_archive(self, path: Path) -> None:
        try:
            last, problem, contents = archive.verify_file(path)
        except archive.ArchiveError as exc:
            raise CommandError(str(exc)) from None
        if problem is not None:
            self.stderr.write(f"FAILED {problem}")
            raise CommandError("The archive failed verification.")
        end = last.seq if last else 0
        self.stdout.write(
            f"Archive {path.name}: chain {contents.chain}, {len(contents.records)} entries up to "
            f"seq {end}, verifies."
        )
