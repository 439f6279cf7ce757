from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashvault.audit import chain, checkpoints
from dashvault.orgs.queries import org_by_ref


class Command(BaseCommand):
    help = (
        "The tamper-evident audit log. `audit verify [--org ORG]` checks every chain (or one "
        "organization's) against the audit key and the signed checkpoints and names the first "
        "bad entry of each broken chain (exit status 1). `audit checkpoint` signs the chains' "
        "current heads into a new checkpoint now (the server also does it hourly and every "
        "10,000 entries)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="verify the chains")
        verify.add_argument("--org", help="only this organization (id or exact name)")
        sub.add_parser("checkpoint", help="write a signed checkpoint now")

    def handle(self, *args: Any, **options: Any) -> None:
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
