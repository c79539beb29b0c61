"""The client rules, once: the Python mirror and static/cf-client.js run the same frame sequences."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import pytest

from common import protocol
from common.protocol.mirror import Mirror, Reconnect, Stop

ROOT = Path(__file__).resolve().parent.parent
CASES_PATH = ROOT / "tests" / "mirror_cases.json"
CASES = json.loads(CASES_PATH.read_text())
PROJECT = UUID(CASES["project_id"])


def _frames(messages: list[protocol.ClientMessage]) -> list[Any]:
    return [msgspec.json.decode(protocol.encode(m)) for m in messages]


def _check(mirror: Mirror, expect: dict[str, Any], step: Any) -> None:
    state = mirror.projects[PROJECT]
    checks: dict[str, Callable[[], Any]] = {
        "seq": lambda: state.seq,
        "nodes": lambda: sorted(str(k) for k in state.nodes),
        "connections": lambda: sorted(str(k) for k in state.connections),
        "jobs": lambda: {str(k): j.status.value for k, j in state.jobs.items()},
        "progress": lambda: {str(k): j.progress for k, j in state.jobs.items()},
        "queue": lambda: {
            str(k): [j.queue_position, j.eta_s, j.progress_estimated] for k, j in state.jobs.items()
        },
        "node_x": lambda: {str(k): n.x for k, n in state.nodes.items()},
        "node_status": lambda: {str(k): n.status.value for k, n in state.nodes.items()},
        "takes": lambda: sorted(str(k) for k in state.takes),
        "active_take": lambda: {
            str(k): str(n.active_take_id) if n.active_take_id else None
            for k, n in state.nodes.items()
        },
        "members": lambda: {str(k): m.role.value for k, m in state.members.items()},
        "presence": lambda: sorted(str(k) for k in state.presence),
        "deleted": lambda: state.deleted,
        "ended": lambda: state.ended,
        "send": lambda: _frames(step.send),
        "later": lambda: _frames([frame for _, frame in step.later]),
    }
    for name, want in expect.items():
        got = checks[name]()
        if name in ("node_x", "node_status", "progress", "queue", "active_take"):
            got = {k: v for k, v in dict(got).items() if k in want}
        assert got == want, f"{name}: {got!r} != {want!r}"


@pytest.mark.parametrize("case", CASES["cases"], ids=[c["name"] for c in CASES["cases"]])
def test_python_mirror_follows_the_shared_cases(case: dict[str, Any]) -> None:
    """The Python mirror reaches every state and sends every frame each case names."""
    mirror = Mirror(rand=lambda: 0.5)
    assert _frames(mirror.subscribe(PROJECT)) == [{"type": "subscribe", "project_id": str(PROJECT)}]
    for step in case["steps"]:
        expect = dict(step["expect"])
        if "close" in step:
            decision = mirror.closed(step["close"])
            if "stop" in expect:
                assert decision == Stop(expect.pop("stop"))
            else:
                assert isinstance(decision, Reconnect) and expect.pop("reconnect")
                assert _frames(mirror.resume()) == expect.pop("resume")
            _check(mirror, expect, None)
        else:
            result = mirror.receive(protocol.decode_server(json.dumps(step["frame"])))
            _check(mirror, expect, result)


def test_backoff_is_full_jitter_under_a_doubling_cap() -> None:
    """Reconnect delays are random below 0.5 s · 2^attempt, capped at 4 s, and reset on a frame."""
    mirror = Mirror(rand=lambda: 1.0)
    delays = []
    for _ in range(6):
        decision = mirror.closed(1006)
        assert isinstance(decision, Reconnect)
        delays.append(decision.delay_s)
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    mirror.receive(protocol.Pong())
    assert mirror.closed(1006) == Reconnect(0.5)


def test_js_client_follows_the_shared_cases() -> None:
    """static/cf-client.js, run under Node with a scripted socket, passes the same cases."""
    node = shutil.which("node")
    assert node is not None, "Node.js runs the client's own rules; install nodejs"
    result = subprocess.run(
        [node, str(ROOT / "tests" / "mirror_cases.mjs"), str(ROOT / "static" / "cf-client.js")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(CASES['cases'])} cases passed" in result.stdout
