"""Schemathesis against the served /openapi.json: generated requests to every operation of the real API
(the service with its ApiServer on 127.0.0.1:0, the fake Mixin, real SQLite) — as an operator and
anonymously. No answer may be a 5xx, and every answer must match its declared status codes, content
type and schema. Bounded and deterministic (derandomized, few examples per operation)."""
from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from api.server import api_address
from sim.fake_mixin_oauth import install_oauth
from sim.world import BTC_USDT_PAIR, build_world
from storage import api_auth
from tests.support import running_mmflow, wait_until

LIMITS = {"rate_limit_per_address": "100000/minute", "rate_limit_per_token": "100000/minute",
          "rate_limit_intents": "100000/minute"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    world = build_world()
    install_oauth(world.fake).register_client(world.bot_id)
    with running_mmflow(tmp, world, api={"listen": "127.0.0.1:0", "command_wait": 0.5, **LIMITS}) as running:
        host, port = wait_until(lambda: api_address(running.services), message="the API bound")
        user = world.new_user()
        invoice = world.invoice(running.services.config.pair(BTC_USDT_PAIR), *map(__import__("decimal").Decimal,
                                                                                 ("0.05", "2000")))
        world.pay_invoice(user, running.services.config.pair(BTC_USDT_PAIR), "6f1f4d3e-2c1b-4a5d-9e8f-7a6b5c4d3e2f",
                          invoice)
        _, token = api_auth.create_api_token("operator", "fuzz", time.time(), None)
        yield f"http://{host}:{port}", token
    world.fake.stop()


CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
          schemathesis.checks.content_type_conformance, schemathesis.checks.response_schema_conformance]


def _fuzz(base: str, headers: dict, examples: int) -> list[str]:
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20

    for operation in operations:
        @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def run(case):
            case.call_and_validate(base_url=base, headers=headers, checks=CHECKS, timeout=30)

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collected: one report naming every failing operation
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:600]}")
    return failures


def test_every_operation_answers_by_its_schema_as_an_operator(served):
    base, token = served
    failures = _fuzz(base, {"Authorization": f"Bearer {token}"}, examples=6)
    assert not failures, "\n".join(failures)


def test_no_operation_answers_5xx_to_an_anonymous_call(served):
    base, _ = served
    failures = _fuzz(base, {}, examples=2)
    assert not failures, "\n".join(failures)
