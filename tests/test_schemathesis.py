"""Property-based API testing: schemathesis generates requests from /openapi.json against the live app.

Bounded (a fixed number of examples per operation, derandomized) so it runs the
same way in CI every time: no 5xx, and every response matches the document.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.servers import ServerThread


@pytest.fixture
def bearer(server: ServerThread) -> dict[str, str]:
    """Headers of a freshly signed-up account, so authenticated routes get past 401."""
    r = httpx.post(
        f"{server.base_url}/api/auth/signup",
        json={"email": "fuzz@example.com", "password": "fuzzing pass"},
    )
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
)


@pytest.mark.timeout(300)
def test_api_conforms(server: ServerThread, bearer: dict[str, str]) -> None:
    """No generated request gets a 5xx, and every response matches the documented status, type and schema."""
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        if operation.path == "/api/auth/logout":
            continue  # would revoke the session every other operation uses

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(headers=bearer)
            case.validate_response(response, checks=CHECKS)

        run()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert len(tested) >= 15, tested
