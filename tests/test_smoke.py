from tests.conftest import Harness


async def test_issue_and_verify_once(h: Harness) -> None:
    email, user = await h.user()
    _, agent = await h.agent()
    pin = await h.issue_pin(user)
    first = await h.verify(agent, email, pin)
    assert first["valid"] is True
    again = await h.verify(agent, email, pin)
    assert again == {"valid": False, "account_id": None, "verified_at": None}
