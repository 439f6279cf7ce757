"""The `dashvault` command: Django's management commands plus dashvault's own.

dashvault serve          HTTPS server (migrates first in embedded mode)
dashvault createorg      a new organization and its first admin
dashvault createstaff    a platform staff member
dashvault keys rotate    a new master key; re-wraps every organization's data key
dashvault token create   an org API token for the push API (printed once)
dashvault rollups rebuild  recompute daily rollups from raw points
dashvault demo           the demo organization "Acme" (once)
dashvault help           every command
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashvault.settings")
    # Files we create (SQLite database, outbox mail with set-password links, keys, backups)
    # are readable by their owner only.
    os.umask(0o077)
    from django.core.management import execute_from_command_line

    execute_from_command_line([os.path.basename(sys.argv[0]), *sys.argv[1:]])


if __name__ == "__main__":
    main()
