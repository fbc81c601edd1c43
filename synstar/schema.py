"""OpenAPI: the schema class (unique component names) and the hook that documents the one error shape.

Kept apart from synstar.api: drf-spectacular's schema module imports DRF's views, which load the parsers
in synstar.api from the settings.
"""

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema


class AutoSchema(SpectacularAutoSchema):
    """Names components after the view that owns a nested serializer: `HoldCreateApi.InputSerializer` is
    `HoldCreateInput`, `WalletApi.OutputSerializer` is `WalletOutput`. Several views may then each keep
    their own small `InputSerializer`/`OutputSerializer` without two components sharing one name."""

    def get_serializer_name(self, serializer, direction) -> str:
        cls = serializer.__class__
        owner, _, own = cls.__qualname__.rpartition(".")
        if not owner or "<locals>" in owner:
            return cls.__name__
        return owner.rpartition(".")[2].removesuffix("Api") + own


    def _permission_attrs(self, name: str) -> list:
        return [getattr(p, name) for p in self.view.get_permissions() if getattr(p, name, None)]

    def get_auth(self):
        """Only the schemes the view's permissions accept (a session-only operation declares the cookie)."""
        auths = super().get_auth()
        for schemes in self._permission_attrs("schema_schemes"):
            auths = [a for a in auths if a and set(a) <= set(schemes)]
        return auths

    def get_description(self) -> str:  # type: ignore[override]  # drf-spectacular's signature, not DRF's
        """The view's docstring, then who may call it (from the permissions' `schema_note`)."""
        return "\n\n".join(filter(None, [super().get_description(), *self._permission_attrs("schema_note")]))


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "code", "message"],
            "properties": {
                "type": {"type": "string", "example": "invalid_request_error"},
                "code": {"type": "string", "example": "validation_error"},
                "message": {"type": "string"},
            },
            "additionalProperties": True,
        }
    },
}


def schema_error_responses(result, generator, request, public):
    """Postprocessing hook: every operation documents the one error shape as its default response."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            operation.setdefault("responses", {}).setdefault(
                "default",
                {
                    "description": 'Any error: {"error": {"type", "code", "message"}}',
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            )
    return result
