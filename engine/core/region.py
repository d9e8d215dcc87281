"""The one rule for a region code: ISO 3166 alpha-2 that phonenumbers can read numbers of."""

from __future__ import annotations

import phonenumbers


def parse_region(value: str) -> str:
    """``value`` as an upper-case region code (``gb`` → ``GB``); ``ValueError`` saying why when
    it is not one. Used by the settings, ``indicators --region`` and ``scan --region``."""
    region = value.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not an ISO 3166 alpha-2 region phonenumbers knows")
    return region
