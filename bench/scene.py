"""The scene of every hub measurement: a web process, the publisher acting as the worker, and
client processes following the given projects — started in that order, stopped in reverse."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from bench.clients import ClientPool
from bench.plan import Context
from bench.publisher import Publisher, PublisherConfig
from bench.services import WebProc


@contextmanager
def hub_scene(
    ctx: Context,
    follows: list[tuple[str, str]],
    processes: int,
    *,
    web: WebProc | None = None,
    also: Sequence[WebProc] = (),
    **pool_options: Any,
) -> Iterator[tuple[WebProc, Publisher, ClientPool]]:
    """Start `web` (a new one by default) and the web processes `also` (sharing its port), a
    publisher and a pool following `follows` ((project_id, token) per client) in
    `processes` client processes; yield the first web process, the publisher and the pool."""
    web = web or ctx.web()
    webs = [web, *also]
    try:
        for proc in webs:
            proc.start()
            proc.wait_ready()
        config = PublisherConfig(
            ctx.services.database_url, ctx.services.redis_url, ctx.services.namespace
        )
        options: dict[str, Any] = {
            "connect_timeout_s": ctx.sizes.connect_timeout_s,
            "backoff": ctx.backoff,
        } | pool_options
        with (
            Publisher(config) as publisher,
            ClientPool(web.ws_url, follows, processes, **options) as pool,
        ):
            yield web, publisher, pool
    finally:
        for proc in reversed(webs):
            proc.stop()
