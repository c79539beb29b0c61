"""Request ids, JSON log lines and Prometheus metrics."""

from __future__ import annotations

import json
import logging

import httpx

from common import logs
from tests.support.accounts import Account


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    """A sane client X-Request-ID comes back unchanged; otherwise a fresh one is made."""
    r = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith junk"})
    assert r.headers["x-request-id"] != "bad id\twith junk"
    assert len(r.headers["x-request-id"]) == 32


async def test_metrics_count_requests_by_route_template(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """/metrics counts requests under the route template, never the concrete id."""
    r = await client.get(
        "/api/projects/00000000-0000-0000-0000-000000000000", headers=alice.headers
    )
    assert r.status_code == 404
    text = (await client.get("/metrics")).text
    assert (
        'canvasflow_http_requests_total{method="GET",route="/api/projects/{project_id}",status="404"}'
        in text
    )
    assert "00000000-0000-0000-0000-000000000000" not in text
    assert "canvasflow_http_request_duration_seconds_bucket" in text


def test_json_log_line_carries_context_ids() -> None:
    """A log record becomes one JSON line with the ids set in context and the extra fields."""
    formatter = logs.JsonFormatter()
    token = logs.job_id.set("job-1")
    try:
        record = logging.LogRecord(
            "canvasflow.test", logging.INFO, __file__, 1, "hello %s", ("x",), None
        )
        record.status = 201
        line = formatter.format(record)
    finally:
        logs.job_id.reset(token)
    assert "\n" not in line
    body = json.loads(line)
    assert body["msg"] == "hello x" and body["level"] == "info"
    assert body["job_id"] == "job-1" and body["status"] == 201
    assert "request_id" not in body


async def test_request_log_line_has_ids_and_no_token(
    client: httpx.AsyncClient, alice: Account
) -> None:
    """The per-request log line names route, status and user, and never the bearer token."""
    formatter = logs.JsonFormatter()
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    handler = Capture()
    logger = logging.getLogger("canvasflow.http")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        r = await client.get("/api/auth/me", headers={**alice.headers, "X-Request-ID": "req-42"})
        assert r.status_code == 200
    finally:
        logger.removeHandler(handler)
    mine = [json.loads(x) for x in lines if '"req-42"' in x]
    assert len(mine) == 1
    assert mine[0]["route"] == "/api/auth/me" and mine[0]["status"] == 200
    assert mine[0]["user_id"] == alice.user_id
    assert alice.token not in "".join(lines)
