"""Pseudonyms: a patient becomes a salted-hash name before anything reaches results/."""

from __future__ import annotations

import hashlib
import hmac
import os

from anapart.io.errors import IngestError

PSEUDONYM_PREFIX = "P"  # the main (development) cohort
EXTERNAL_PREFIX = "E"  # an external test cohort: its pseudonyms and slice ids never equal the main cohort's


def pseudonym(patient_id: str, salt: str, prefix: str = PSEUDONYM_PREFIX) -> str:
    """Salted-hash pseudonym: stable for a salt, not reversible without it; ``prefix`` tells the cohort."""
    digest = hmac.new(salt.encode(), patient_id.encode(), hashlib.sha256).hexdigest()
    return prefix + digest[:10]


def resolve_salt(salt: str) -> str:
    """``env:NAME`` reads the salt from an environment variable, so a real salt stays out of config files."""
    if salt.startswith("env:"):
        name = salt[4:]
        value = os.environ.get(name)
        if not value:
            raise IngestError(f"pseudonym salt: environment variable {name} is not set")
        return value
    return salt
