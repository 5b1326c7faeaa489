"""What the OpenAPI document says beyond what FastAPI derives from the routes: the error
responses the routes share, and the 400 FastAPI answers to a body that is not JSON."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from query_api.models import ErrorMessage, ValidationFailure

CALLER_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorMessage, "description": "no or unknown bearer token"},
    403: {"model": ErrorMessage, "description": "the token is not granted this shop"},
}
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorMessage,
        "description": "invalid cursor, or no shop_id with a token limited to some shops",
    },
    **CALLER_ERRORS,
    422: {
        "model": ValidationFailure,
        "description": "a parameter is invalid; the message names the valid values",
    },
    503: {"model": ErrorMessage, "description": "the database is not reachable"},
}


def as_json(responses: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """Error responses of a route whose own media type is not JSON: FastAPI would document
    their models under the route's media type, so they name their JSON schema explicitly (the
    models are components through the other routes)."""
    return {
        status: {
            "description": spec["description"],
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{spec['model'].__name__}"}
                }
            },
        }
        for status, spec in responses.items()
    }


def document_unreadable_bodies(app: FastAPI) -> None:
    """FastAPI answers 400 `{"detail": ...}` to a body it cannot parse as JSON, on every route
    that takes one, without saying so in the document: say so."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = generate()
        for path_item in spec.get("paths", {}).values():
            for operation in path_item.values():
                if isinstance(operation, dict) and "requestBody" in operation:
                    operation["responses"].setdefault("400", {
                        "description": "the body is not valid JSON",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/ErrorMessage"}
                        }},
                    })
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
