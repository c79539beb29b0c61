"""The OpenAPI document: complete, valid in shape, and served."""

from __future__ import annotations

import httpx

from server.app import routes
from server.openapi import build_openapi, undocumented


def test_every_http_route_is_documented() -> None:
    """No route of the app lacks an @api declaration."""
    assert undocumented(routes()) == []


def test_document_shape() -> None:
    """Paths carry their parameters, bodies reference component schemas, errors share one shape."""
    spec = build_openapi(routes(), "test")
    assert spec["openapi"] == "3.1.0"
    post_nodes = spec["paths"]["/api/projects/{project_id}/nodes"]["post"]
    assert post_nodes["parameters"][0]["name"] == "project_id"
    assert post_nodes["parameters"][0]["schema"] == {"type": "string", "format": "uuid"}
    [media_key] = spec["paths"]["/media/{key}"]["get"]["parameters"][:1]
    assert media_key["name"] == "key" and media_key["schema"] == {"type": "string"}
    body_ref = post_nodes["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = body_ref.rsplit("/", 1)[1]
    assert set(spec["components"]["schemas"][name]["properties"]) == {"type", "x", "y", "data"}
    assert {"201", "401", "404", "413", "415", "422"} <= set(post_nodes["responses"])
    error_schema = post_nodes["responses"]["422"]["content"]["application/json"]["schema"]
    assert error_schema == {"$ref": "#/components/schemas/ErrorResponse"}
    for path_item in spec["paths"].values():
        for op in path_item.values():
            for ref in _refs(op):
                assert ref.rsplit("/", 1)[1] in spec["components"]["schemas"], ref


def _refs(obj: object) -> list[str]:
    if isinstance(obj, dict):
        out = [obj["$ref"]] if isinstance(obj.get("$ref"), str) else []
        for v in obj.values():
            out += _refs(v)
        return out
    if isinstance(obj, list):
        return [r for v in obj for r in _refs(v)]
    return []


async def test_openapi_is_served(client: httpx.AsyncClient) -> None:
    """GET /openapi.json returns the same document the builder makes."""
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    assert r.json()["paths"].keys() == build_openapi(routes(), "x")["paths"].keys()
