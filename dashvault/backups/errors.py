"""The one error of dashvault.backups, apart so targets and snapshots can both raise it."""


class BackupError(Exception):
    """A backup that cannot be made, read or restored; the message is for operators."""
