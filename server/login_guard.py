"""Who may try a password now: log-in and sign-up limits that slow attackers, not owners.

Counted over a 15-minute window from the first hit (docs/deploy.md, "Log-in
limits", says the same for operators):

1. **account and address**: `login_attempts_per_15min` (10) failures into one
   account from one client address refuse that address for that account
   (429 until the window ends). An attacker's address is stopped; the owner
   elsewhere is not.
2. **address**: `login_address_attempts_per_15min` (100) failures from one
   address across accounts refuse it (credential stuffing from one host).
3. **account slow-down**: past `login_attempts_per_15min` attempts from
   anywhere, the account takes one attempt at a time, and each makes the
   next wait 1 s, 2 s, 4 s… up to `login_max_delay_s` (60 s). Attempts are
   counted before the password check (and given back when it succeeds), so
   parallel guesses queue too. An attacker with many addresses gets about
   one guess a minute; nobody is locked out for 15 minutes.

A browser that once logged into the account holds a device token (the
`cf_device` cookie, HMAC-signed, 180 days): limits 2 and 3 do not apply to it,
so the owner's own browser logs in at once whatever an attacker does
elsewhere. Unknown emails are counted exactly like known ones, so the limits
say nothing about which accounts exist. Sign ups: `signups_per_hour` (20) per
address.

Counts live in Redis; while Redis is down they live in the process
(`server.limits.FallbackCounters`): log in keeps working and limited.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from common.config import Settings
from common.keys import rate_limit_key
from server.errors import ApiError
from server.limits import Counters, FallbackCounters, MemoryCounters, RedisCounters
from tasks.storage.auto import load_secret

WINDOW_S = 15 * 60
SIGNUP_WINDOW_S = 60 * 60
#: the first wait of the account slow-down; it doubles per failure
BASE_DELAY_S = 1.0
DEVICE_COOKIE = "cf_device"
DEVICE_TTL_S = 180 * 24 * 3600


@dataclass(frozen=True)
class LoginPolicy:
    """The numbers of the limits above."""

    pair_failures: int = 10
    address_failures: int = 100
    max_delay_s: float = 60.0
    signups_per_hour: int = 20

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginPolicy:
        """The policy the settings configure."""
        return cls(
            pair_failures=settings.login_attempts_per_15min,
            address_failures=settings.login_address_attempts_per_15min,
            max_delay_s=settings.login_max_delay_s,
            signups_per_hour=settings.signups_per_hour,
        )


def _digest(*parts: str) -> str:
    # Redis keys never carry an email; a digest still tells subjects apart
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _too_many(seconds: float, what: str) -> ApiError:
    wait_s = max(1, math.ceil(seconds))
    return ApiError(
        429,
        "too_many_attempts" if what == "log in" else "too_many_signups",
        f"Too many {what} attempts; try again in {wait_s} s.",
        headers={"Retry-After": str(wait_s)},
        retry_after_s=wait_s,
    )


class LoginGuard:
    """The limits of the module docstring over `counters`, and the device tokens."""

    def __init__(
        self, counters: Counters, namespace: str, policy: LoginPolicy, secret: bytes
    ) -> None:
        self.counters = counters
        self.namespace = namespace
        self.policy = policy
        self._secret = secret

    def _keys(self, email: str, address: str) -> tuple[str, str, str, str]:
        subject = email.strip().lower()
        ns = self.namespace
        return (
            rate_limit_key(ns, "login-pair", _digest(subject, address)),
            rate_limit_key(ns, "login-address", _digest(address)),
            rate_limit_key(ns, "login-account", _digest(subject)),
            rate_limit_key(ns, "login-delay", _digest(subject)),
        )

    async def begin_login(self, email: str, address: str, device: str | None) -> None:
        """Admit one log-in attempt or raise 429 `too_many_attempts`; call `end_login` after.

        The attempt is counted against the account before the password is
        checked, so a burst of parallel guesses sees its own count rise and,
        past the free failures, queues for the account's one slot at a time.
        """
        pair, by_address, account, delay = self._keys(email, address)
        trusted = self.device_ok(email, device)
        keys = [pair] if trusted else [pair, by_address]
        limits = (self.policy.pair_failures, self.policy.address_failures)
        for (count, left_s), limit in zip(await self.counters.read(keys), limits, strict=False):
            if count >= limit:
                raise _too_many(left_s, "log in")
        (attempts,) = await self.counters.incr([(account, WINDOW_S)])
        over = attempts - self.policy.pair_failures
        if over > 0 and not trusted:
            wait_s = min(BASE_DELAY_S * 2 ** min(over - 1, 30), self.policy.max_delay_s)
            held_s = await self.counters.claim(delay, wait_s)
            if held_s > 0:
                # refused before any password check: it is not an attempt
                await self.counters.decr([account])
                raise _too_many(held_s, "log in")

    async def end_login(self, email: str, address: str, ok: bool) -> None:
        """Count a wrong password (or unknown email) from here, or forgive a right one."""
        pair, by_address, account, _ = self._keys(email, address)
        if ok:
            # the owner got in from here: neither this attempt nor this address's failures count
            await self.counters.decr([account])
            await self.counters.delete([pair])
        else:
            await self.counters.incr([(pair, WINDOW_S), (by_address, WINDOW_S)])

    async def abandon_login(self, email: str) -> None:
        """The attempt never reached a password check (an outage): it does not count."""
        _, _, account, _ = self._keys(email, "")
        await self.counters.decr([account])

    async def check_signup(self, address: str) -> None:
        """Count a sign up from `address`; raise 429 `too_many_signups` past the hourly limit."""
        key = rate_limit_key(self.namespace, "signup", _digest(address))
        (count,) = await self.counters.incr([(key, SIGNUP_WINDOW_S)])
        if count > self.policy.signups_per_hour:
            ((_, left_s),) = await self.counters.read([key])
            raise _too_many(left_s, "sign up")

    def _mac(self, email: str, nonce: str) -> str:
        message = f"device\n{email.strip().lower()}\n{nonce}".encode()
        raw = hmac.new(self._secret, message, hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(raw).decode()

    def device_token(self, email: str) -> str:
        """A new device token for a browser that just logged into `email`'s account."""
        nonce = secrets.token_urlsafe(12)
        return f"{nonce}.{self._mac(email, nonce)}"

    def device_ok(self, email: str, token: str | None) -> bool:
        """Whether `token` is a device token of `email`'s account."""
        if not token or len(token) > 128 or token.count(".") != 1:
            return False
        nonce, mac = token.split(".")
        return hmac.compare_digest(self._mac(email, nonce).encode(), mac.encode("utf-8", "replace"))


def make_login_guard(settings: Settings, redis: Redis) -> LoginGuard:
    """The web process's guard: counters in Redis, in the process while Redis is down."""
    counters = FallbackCounters(RedisCounters(redis), MemoryCounters())
    return LoginGuard(
        counters, settings.namespace, LoginPolicy.from_settings(settings), load_secret(settings)
    )
