"""Prediction inputs at rest: encrypted under the data subject's key (or the tenant's).

A prediction's inputs are personal data. They are stored as an envelope sealed with key
management under ``("subject", <pseudonymous id>)`` when the call names a subject, else under
``("tenant", <tenant id>)``, with the prediction id as associated data (a ciphertext cannot be
moved to another row). Erasing a subject destroys its key: its inputs become unreadable
everywhere at once, while the audit trail, which holds only a digest of the sealed record, still
verifies.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ombud.core.errors import SubjectErased
from ombud.crypto.errors import KeyDestroyed
from ombud.crypto.service import KeyManager

SEALED = "sealed"


def key_for(*, tenant_id: str, subject: str | None) -> tuple[str, str]:
    """The (scope, owner) of the data key that seals a prediction's inputs."""
    return ("subject", subject) if subject else ("tenant", tenant_id)


async def seal(
    keys: KeyManager,
    inputs: dict[str, Any],
    *,
    prediction_id: str,
    tenant_id: str,
    subject: str | None,
) -> dict[str, Any]:
    """The stored form of ``inputs``: ``{"sealed": <base64 envelope>, "scope": ...}``.

    Raises:
        SubjectErased: the subject was erased: nothing new is stored about it (410).
    """
    scope, owner = key_for(tenant_id=tenant_id, subject=subject)
    plaintext = json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()
    try:
        envelope = await keys.encrypt(
            plaintext, scope=scope, owner=owner, aad=prediction_id.encode()
        )
    except KeyDestroyed as exc:
        raise SubjectErased(
            detail="the subject was erased: nothing more is recorded about it"
        ) from exc
    return {SEALED: base64.b64encode(envelope).decode(), "scope": scope}


async def unseal(
    keys: KeyManager, stored: dict[str, Any], *, prediction_id: str
) -> dict[str, Any] | None:
    """The inputs in clear; ``None`` once their key was destroyed (the subject was erased).

    Records written before sealing existed are returned as stored.
    """
    if SEALED not in stored:
        return stored
    try:
        plaintext = await keys.decrypt(base64.b64decode(stored[SEALED]), aad=prediction_id.encode())
    except KeyDestroyed:
        return None
    loaded: dict[str, Any] = json.loads(plaintext)
    return loaded
