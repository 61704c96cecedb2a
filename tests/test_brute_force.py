"""The attack the issue names: someone holding a valid agent key guesses PINs for one account
while the account holder keeps asking for new PINs. No more than ACCOUNT_MAX_FAILURES guesses
are ever evaluated before the lock, a new PIN does not reset the count, the lock refuses even
the right PIN, and rate-limited requests are not evaluated at all."""

from __future__ import annotations

import asyncio
from uuid import UUID

import asyncpg

from tests.conftest import GENEROUS_RATE_LIMITS, Harness, HarnessFactory

DEFAULT_LIMITS = {
    "rate_limit_verify_per_agent": "120/minute",
    "rate_limit_verify_per_account": "30/minute",
}


async def evaluated_guesses(pg: asyncpg.Connection, account_id: UUID) -> int:
    """Verifications that compared a PIN (or found none) and counted as failures; a refusal
    while locked (`locked_out`) compared nothing."""
    count: int = await pg.fetchval(
        "SELECT count(*) FROM audit_events WHERE account_id = $1 AND type = 'verify_failed'"
        " AND reason <> 'locked_out'",
        account_id,
    )
    return count


def wrong_guess(current_pin: str, attempt: int) -> str:
    """A guess that is certainly wrong (the test plays the attacker's worst luck, so that the
    count is exact; a right guess would be the 1-in-10^6 event the README prices)."""
    guess = f"{attempt % 10**6:06d}"
    return guess if guess != current_pin else f"{(attempt + 1) % 10**6:06d}"


async def attack(
    h: Harness, email: str, user: dict[str, str], agents: list[dict[str, str]], tries: int
) -> tuple[str, dict[int, int]]:
    """Guess `tries` times, rotating agent keys; the user gets a new PIN every 3 guesses.
    Returns the newest PIN and a histogram of answer statuses."""
    statuses: dict[int, int] = {}
    pin = await h.issue_pin(user)
    for attempt in range(tries):
        if attempt % 3 == 2:
            pin = await h.issue_pin(user)
        response = await h.client.post(
            "/v1/agent/verifications",
            headers=agents[attempt % len(agents)],
            json={"email": email, "pin": wrong_guess(pin, attempt)},
        )
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code == 200:
            assert response.json()["valid"] is False
    return pin, statuses


async def test_at_most_account_max_failures_guesses_before_the_lock(
    harness_factory: HarnessFactory, pg: asyncpg.Connection
) -> None:
    # The shipped limits on verification; only PIN issuing is relaxed so the user can keep
    # asking for new PINs as fast as the attacker guesses.
    h = await harness_factory(
        **DEFAULT_LIMITS,
        rate_limit_pin_issue_per_account=GENEROUS_RATE_LIMITS["rate_limit_pin_issue_per_account"],
    )
    assert h.services.settings.account_max_failures == 20
    email, user = await h.user()
    account_id = UUID((await h.client.get("/v1/me", headers=user)).json()["id"])
    agents = [(await h.agent())[1] for _ in range(3)]

    _, statuses = await attack(h, email, user, agents, tries=100)

    assert await evaluated_guesses(pg, account_id) == 20
    # 30 requests a minute for the account are answered (20 evaluated, then 10 refused by
    # the lock); the other 70 are 429s that compared nothing.
    assert statuses == {200: 30, 429: 70}
    events = [e["type"] for e in await h.events(user)]
    assert events.count("locked") == 1


async def test_each_lock_period_allows_at_most_account_max_failures(
    harness_factory: HarnessFactory, pg: asyncpg.Connection
) -> None:
    """Over several lock periods (a 3-second lock so the test is short, yet long enough for
    a loaded CI machine to finish a period's requests inside it): each period evaluates
    exactly ACCOUNT_MAX_FAILURES guesses, never more: the README's formula."""
    h = await harness_factory(account_max_failures=5, account_lock_seconds=3)
    email, user = await h.user()
    account_id = UUID((await h.client.get("/v1/me", headers=user)).json()["id"])
    _, agent = await h.agent()
    for period in range(1, 3):
        await attack(h, email, user, [agent], tries=9)  # 5 evaluated, 4 refused
        assert await evaluated_guesses(pg, account_id) == 5 * period
        # Locked: a new PIN does not lift the lock, and even the right PIN is refused.
        right = await h.issue_pin(user)
        assert (await h.verify(agent, email, right))["valid"] is False
        assert await evaluated_guesses(pg, account_id) == 5 * period
        await asyncio.sleep(3.05)  # the lock runs out
    locks = await pg.fetchval(
        "SELECT count(*) FROM audit_events WHERE account_id = $1 AND type = 'locked'", account_id
    )
    assert locks == 2
    assert (await h.verify(agent, email, await h.issue_pin(user)))["valid"] is True
