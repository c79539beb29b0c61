"""How long a failed log in takes for a known and for an unknown email, side by side.

    python -m bench.login_timing [--database-url URL --redis-url URL] [--tries N]

Starts `canvasflow web`, signs up N accounts, then sends N wrong passwords
for known emails and N for unknown ones, interleaved (so load on the machine
hits both alike), each from its own forwarded address so no limit applies.
Equal cost means the medians match: the unknown email is checked against a
dummy scrypt hash. Before that, an unknown email answered in ~3 ms against
~66 ms, which told an attacker which accounts exist.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from bench.services import Services, WebProc, fresh_services

#: the medians may differ by this factor at most (loopback jitter on a shared machine)
MAX_RATIO = 1.5


async def measure(services: Services, tries: int) -> tuple[list[float], list[float]]:
    """Seconds per failed log in: known emails, unknown emails."""
    web = WebProc(services)
    web.env["CANVASFLOW_TRUSTED_PROXIES"] = "127.0.0.1"
    web.start()
    try:
        web.wait_ready()
        async with httpx.AsyncClient(base_url=web.base_url, timeout=30) as c:
            for i in range(tries):
                r = await c.post(
                    "/api/auth/signup",
                    json={"email": f"known{i}@example.com", "password": "correct horse"},
                    headers={"X-Forwarded-For": f"10.1.{i // 250}.{i % 250}"},
                )
                r.raise_for_status()
            c.cookies.clear()
            known: list[float] = []
            unknown: list[float] = []
            for i in range(tries):
                for email, into in ((f"known{i}", known), (f"nobody{i}", unknown)):
                    started = time.perf_counter()
                    r = await c.post(
                        "/api/auth/login",
                        json={"email": f"{email}@example.com", "password": "wrong password"},
                        headers={"X-Forwarded-For": f"10.2.{len(into) // 250}.{len(into) % 250}"},
                    )
                    into.append(time.perf_counter() - started)
                    if r.status_code != 401:
                        raise RuntimeError(f"expected 401, got {r.status_code} {r.text}")
            return known, unknown
    finally:
        web.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point: print both medians and their ratio; exit 1 past MAX_RATIO."""
    parser = argparse.ArgumentParser(prog="python -m bench.login_timing", description=__doc__)
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    parser.add_argument("--tries", type=int, default=30)
    args = parser.parse_args(argv)
    from bench.run import resolve_services

    admin_url, redis_url = resolve_services(args)
    with fresh_services(admin_url, redis_url) as services:
        known, unknown = asyncio.run(measure(services, args.tries))
    k, u = statistics.median(known), statistics.median(unknown)
    ratio = max(k, u) / min(k, u)
    verdict = "PASS" if ratio <= MAX_RATIO else "FAIL"
    print("| failed log in | median | p90 |")
    print("|---|---|---|")
    for name, values in (("known email", known), ("unknown email", unknown)):
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"| {name} | {statistics.median(values) * 1000:.1f} ms | {p90 * 1000:.1f} ms |")
    print(f"ratio of the medians {ratio:.2f} (limit {MAX_RATIO}): {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
