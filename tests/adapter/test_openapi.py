"""The API against its own OpenAPI document (issue 10): schemathesis generates requests, valid
and invalid, from /openapi.json and checks every answer's status, content type and body against
what the document says, and that invalid input is refused. Bounded: a few dozen examples per
operation, no Prometheus (an absent rate is a documented 503)."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi import checks

from adapter.actuate import DryRunActuator
from adapter.api import create_app
from adapter.metrics import AdapterMetrics
from adapter.predict import MaxWindowPredictor
from adapter.settings import AdapterSettings
from adapter.solve import get_solver
from tests.sim.profiles import video_profile

app = create_app(
    {"video": video_profile()},
    AdapterMetrics(),
    get_solver,
    DryRunActuator(),
    MaxWindowPredictor(headroom=1.1),
    None,
    AdapterSettings(api_token="openapi-test-token"),
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)

CHECKS = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_what_the_document_says(case: schemathesis.Case[Any]) -> None:
    response = case.call()
    assert response.status_code < 500 or response.status_code == 503, response.text
    case.validate_response(response, checks=CHECKS)
