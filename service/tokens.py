"""Random bearer secrets and their stored digests."""

from __future__ import annotations

import hashlib
import secrets

SESSION_TOKEN_PREFIX = "sps_"  # noqa: S105 (a prefix, not a secret): lets secret scanners spot leaks
AGENT_KEY_PREFIX = "spa_"
MFA_TOKEN_PREFIX = "spm_"  # noqa: S105
STAFF_SESSION_PREFIX = "sss_"
STAFF_SETUP_PREFIX = "sst_"
STAFF_MFA_TOKEN_PREFIX = "ssm_"  # noqa: S105 (a prefix): a staff sign-in's second step


def new_token(prefix: str) -> str:
    """256 random bits, URL-safe, with a type prefix."""
    return prefix + secrets.token_urlsafe(32)


def agent_key_hash(key: str) -> bytes:
    """Agent keys are 256-bit random strings: SHA-256 is a sufficient one-way digest."""
    return hashlib.sha256(key.encode()).digest()
