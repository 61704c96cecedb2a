"""openapi.yaml is the app's generated spec, complete enough for a generated client."""

from __future__ import annotations

from pathlib import Path

import yaml

from api.openapi import SPEC_PATH, generate


def test_committed_spec_matches_the_app() -> None:
    assert Path(__file__).resolve().parent.parent / "openapi.yaml" == SPEC_PATH
    assert SPEC_PATH.read_text(encoding="utf-8") == generate(), (
        "openapi.yaml is stale: run scripts/openapi"
    )


def test_every_operation_is_named_and_documents_its_errors() -> None:
    spec = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    seen = set()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            op_id = operation["operationId"]
            assert op_id not in seen
            seen.add(op_id)
            assert operation.get("summary"), (method, path)
            responses = operation["responses"]
            secured = bool(operation.get("security"))
            if secured:
                assert "401" in responses, (method, path)
            for status, response in responses.items():
                if int(status) >= 400 and path not in ("/readyz",):
                    content = response["content"]
                    assert list(content) == ["application/problem+json"], (method, path, status)
    assert {
        "create_account",
        "create_token",
        "logout",
        "get_me",
        "create_support_pin",
        "get_support_pin",
        "delete_support_pin",
        "list_support_pin_events",
        "create_verification",
        "healthz",
        "readyz",
    } <= seen
