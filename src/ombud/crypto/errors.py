"""Errors of key management. They are internal: callers decide what a client gets to see."""

from __future__ import annotations


class CryptoError(Exception):
    """Base of every key-management failure."""


class KeyringError(CryptoError):
    """The key provider cannot be used: a missing or unreadable keyring, an unknown KEK version."""


class DecryptionFailed(CryptoError):
    """A ciphertext or wrapped key is malformed, was tampered with, or does not match its AAD.

    The message never says which check failed: telling them apart would help an attacker.
    """


class KeyDestroyed(CryptoError):
    """The data key was destroyed (crypto-shredded); what it protected can never be read again."""

    def __init__(self, scope: str, owner: str) -> None:
        super().__init__(f"the data key of {scope}/{owner} was destroyed")
        self.scope = scope
        self.owner = owner


class KeyProviderUnavailable(KeyringError):
    """A remote key provider did not answer in time, refused the connection or reported an outage.

    Transient: the same call may succeed later. The message names the provider and the kind of
    failure, never credentials.
    """


class KeyProviderDenied(KeyringError):
    """A remote key provider refused the credentials (e.g. Vault's 403 ``permission denied``).

    Not transient: the token is wrong, expired, or its policy lacks a capability.
    """
