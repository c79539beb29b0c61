"""The web process: REST API, websocket hub and the static canvas."""
