"""Compact per-account key names (a million active PINs: the names are much of the memory)."""

from __future__ import annotations

import uuid

from service.redis_store import Keys, account_tag


def test_an_account_id_is_tagged_in_22_characters() -> None:
    account = uuid.uuid4()
    assert len(account_tag(account)) == 22
    assert Keys("p:").pin(account) == f"p:pin:{{{account_tag(account)}}}"


def test_the_account_keys_share_one_hash_tag() -> None:
    account = uuid.uuid4()
    keys = Keys()
    names = [*keys.pin_state(account), keys.account_sessions(account), keys.mfa_lock(account)]
    tags = {key[key.index("{") : key.index("}") + 1] for key in names}
    assert len(tags) == 1
