"""Pseudonyms: a patient becomes a salted-hash name before anything reaches results/."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from anapart.io.errors import IngestError

PSEUDONYM_PREFIX = "P"  # the main (development) cohort
EXTERNAL_PREFIX = "E"  # an external test cohort: its pseudonyms and slice ids never equal the main cohort's


def pseudonym(patient_id: str, salt: str, prefix: str = PSEUDONYM_PREFIX) -> str:
    """Salted-hash pseudonym: stable for a salt, not reversible without it; ``prefix`` tells the cohort."""
    digest = hmac.new(salt.encode(), patient_id.encode(), hashlib.sha256).hexdigest()
    return prefix + digest[:10]


def resolve_salt(salt: str) -> str:
    """The secret behind a ``pseudonym_salt`` value: ``env:NAME`` reads an environment variable,
    ``file:PATH`` the first line of a private file, anything else is the salt itself.

    A real cohort's salt belongs in the environment or a private file, never in a config file that
    travels with the results.
    """
    if salt.startswith("env:"):
        name = salt[4:]
        value = os.environ.get(name)
        if not value:
            raise IngestError(f"pseudonym salt: environment variable {name} is not set")
        return value
    if salt.startswith("file:"):
        path = Path(salt[5:]).expanduser()
        try:
            lines = path.read_text().strip().splitlines()
            value = lines[0].strip() if lines else ""
        except OSError as e:
            raise IngestError(f"pseudonym salt: cannot read {path} ({e.strerror})") from e
        if not value:
            raise IngestError(f"pseudonym salt: {path} is empty")
        return value
    return salt


# Where each cohort's salt is configured: (section of the config, section it defaults to).
SALT_KEYS = {"cohort": ("cohort", None), "cohort.external": ("cohort.external", "cohort"),
             "staging.cohort": ("staging.cohort", None)}


def salt_of(config: dict, cohort: str) -> str:
    """The ``pseudonym_salt`` value (still a reference: env:/file:/literal) of ``cohort`` (a key of
    SALT_KEYS); an external cohort without its own salt uses the main cohort's.

    Glue scripts read the salt from the config with this, never from rule params: params are printed
    in Snakemake's report."""
    own, fallback = SALT_KEYS[cohort]
    section = config
    for key in own.split("."):
        section = (section or {}).get(key) or {}
    value = section.get("pseudonym_salt")
    return value if value else salt_of(config, fallback)


def salt_fingerprint(salt: str) -> str:
    """A rerun trigger for rule params that reveals nothing about the salt: the pseudonym of a fixed
    word under it (published pseudonyms of patients already are such values). ``unresolved`` when
    the secret cannot be read yet (the job then fails with the reason)."""
    try:
        return pseudonym("anapart salt fingerprint", resolve_salt(salt), prefix="S")
    except IngestError:
        return f"unresolved ({salt.split(':')[0]})"
