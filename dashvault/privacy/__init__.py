"""Personal data: erasing a person, deleting an org, the erasure ledger, and exports (GDPR)."""
