"""The copy-trade API's OpenAPI spec under schemathesis: generated requests (valid and invalid)
never get a 5xx, and every answer matches the spec (status code documented, body schema)."""

from __future__ import annotations

import schemathesis
from copytrade_kit import make_trader
from hypothesis import HealthCheck, settings

from services.copytrade.app import build_app

trader, _intents = make_trader()
schema = schemathesis.openapi.from_asgi("/openapi.json", build_app(trader, "k"))


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_spec(case) -> None:  # noqa: ANN001
    case.headers = {**(case.headers or {}), "X-API-Key": "k"}
    case.call_and_validate()
