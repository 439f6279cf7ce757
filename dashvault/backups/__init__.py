"""Encrypted backups (age), their retention, restore and trial restore."""
