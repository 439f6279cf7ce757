"""allauth MFA adapter: TOTP seeds and recovery-code seeds are stored encrypted."""

from __future__ import annotations

from allauth.mfa.adapter import DefaultMFAAdapter

from dashvault.orgs.keys import decrypt_platform, encrypt_platform

PURPOSE = "mfa-secrets"


class MFAAdapter(DefaultMFAAdapter):
    # allauth's default stores these seeds in clear: a database dump would hand an attacker
    # every second factor. Decryption raises on anything not sealed by us (no silent fallback).
    def encrypt(self, text: str) -> str:
        return encrypt_platform(PURPOSE, text)

    def decrypt(self, encrypted_text: str) -> str:
        return decrypt_platform(PURPOSE, encrypted_text)
