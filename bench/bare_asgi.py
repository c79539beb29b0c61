"""The floor of idle memory: the same stack (uvicorn, Starlette, the same websocket options
as `canvasflow web`) with an endpoint that only answers `subscribe` and reads.

Run as `python -m bench.bare_asgi PORT`; RSS per idle connection of this process is what
any hub on this stack costs at least, so the hub's own share is the difference.
"""

from __future__ import annotations

import json
import sys

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


async def endpoint(websocket: WebSocket) -> None:
    """Accept; answer each subscribe with `subscribed`; otherwise only read."""
    await websocket.accept()
    try:
        while True:
            message = json.loads(await websocket.receive_text())
            if message.get("type") == "subscribe":
                reply = {"type": "subscribed", "project_id": message.get("project_id"), "seq": 0}
                await websocket.send_text(json.dumps(reply))
    except WebSocketDisconnect:
        return


async def ready(request: object) -> PlainTextResponse:
    """GET /readyz."""
    return PlainTextResponse("ok")


app = Starlette(routes=[WebSocketRoute("/ws", endpoint), Route("/readyz", ready)])


def main() -> None:
    """Serve on 127.0.0.1:PORT with `canvasflow web`'s websocket options."""
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        ws_per_message_deflate=False,
        ws_max_size=64 * 1024,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
