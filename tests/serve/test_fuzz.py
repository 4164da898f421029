"""Schemathesis against /openapi.json: generated valid (positive) and invalid (negative)
requests for every operation never get a 5xx, and responses match the documented status
codes, content types and schemas. Bounded examples so the whole run takes seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from reelrec.serve import create_app
from tests.serve.conftest import ADMIN_TOKEN, make_settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 25  # per operation and mode


@pytest.fixture(scope="module")
def api_schema(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    # Schemathesis runs the app's lifespan itself (the model loads on its first request).
    app = create_app(
        make_settings(model_dir, tmp_path_factory.mktemp("fuzz"), admin_token=ADMIN_TOKEN)
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _fuzz(op: Any, mode: GenerationMode) -> list[tuple[int, Any, Any]]:
    """Run EXAMPLES generated cases against one operation: (status, events body, query)."""
    calls: list[tuple[int, Any, Any]] = []

    # Invalid input must be refused (schemathesis knows which generated "negative" cases are
    # really invalid after serialisation). Not for events: a body whose *events* are invalid
    # is a 200 that lists them as rejected (checked below and in test_events.py).
    checks = list(CHECKS)
    if mode is GenerationMode.NEGATIVE and op.label != "POST /v1/events":
        checks.append(negative_data_rejection)

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    def run(case: Any) -> None:
        r = case.call_and_validate(checks=checks)
        json_body = r.status_code == 200 and op.label == "POST /v1/events"
        calls.append((r.status_code, r.json() if json_body else None, case.as_curl_command()))

    run()
    return calls


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(api_schema: Any, mode: GenerationMode) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {"GET /v1/feed", "POST /v1/events", "POST /admin/reload"} <= labels, labels
    fuzzed = set()
    for op in operations:
        try:
            calls = _fuzz(op, mode)
        except Unsatisfiable:
            # Nothing invalid can be sent to an operation without inputs (GET /healthz).
            assert mode is GenerationMode.NEGATIVE and not op.query and not op.body, op.label
            continue
        fuzzed.add(op.label)
        if mode is GenerationMode.NEGATIVE and op.label == "POST /v1/events":
            statuses = {status for status, _, _ in calls}
            assert statuses <= {200, 413, 422}, calls
            assert any(status == 200 and body["rejected"] for status, body, _ in calls), calls
    assert {"GET /v1/feed", "POST /v1/events", "POST /v1/blocks"} <= fuzzed
