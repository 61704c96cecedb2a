"""Compact per-account key names (a million active PINs: the names are much of the memory)."""

from __future__ import annotations

import uuid

import pytest

from service.redis_store import Keys, account_id_from_tag, account_tag
from tests.conftest import Harness


def test_an_account_id_is_tagged_in_22_characters_however_it_is_given() -> None:
    account = uuid.uuid4()
    keys = Keys("p:")
    assert len(account_tag(account)) == 22
    assert account_tag(str(account)) == account_tag(account)
    assert keys.pin(account) == keys.pin(str(account)) == f"p:pin:{{{account_tag(account)}}}"
    assert keys.pin("unknown") == "p:pin:{unknown}"


def test_a_tag_gives_back_its_account_id_and_nothing_else_is_taken_for_one() -> None:
    for account in [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.uuid4()]:
        assert account_id_from_tag(account_tag(account)) == account
    tag = account_tag(uuid.uuid4())
    for bad in ["", tag[:-1], tag + "A", "+" + tag[1:], tag[:-1] + chr(ord(tag[-1]) + 1)]:
        with pytest.raises(ValueError, match="not an account tag"):
            account_id_from_tag(bad)


def test_the_account_keys_share_one_hash_tag() -> None:
    account = uuid.uuid4()
    keys = Keys()
    tags = {
        key[key.index("{") : key.index("}") + 1]
        for key in (keys.pin(account), keys.pin_failures(account), keys.pin_lock(account))
    }
    assert len(tags) == 1


async def test_an_issued_pin_lives_under_the_compact_key(h: Harness) -> None:
    _, user = await h.user()
    await h.issue_pin(user)
    me = await h.client.get("/v1/me", headers=user)
    account = uuid.UUID(me.json()["id"])
    stored = await h.services.redis.client.hgetall(h.services.redis.keys.pin(account))
    assert set(stored) == {b"h", b"e"}
    assert len(stored[b"h"]) == 16
