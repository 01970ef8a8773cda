"""The HTTP API for real: the service (actor tree) runs with its ApiServer on 127.0.0.1:0 against the fake
Mixin (with its OAuth endpoints), real SQLite, and every request goes over HTTP with `requests`.

One service for the module. Two users log in with Mixin OAuth over HTTP and each pays an order from an
order intent on the fake Mixin; a viewer and an operator use API tokens. Time-dependent checks (token
expiry) move the ApiContext's clock, never sleep."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from api.health import readiness
from api.context import ApiContext
from api.server import api_address, api_app
from domain.memo import ACTION_CREATE, ACTION_DEPOSIT, ACTION_EXIT, decode_any
from domain.payment import PaymentStatus, evaluate_payment
from domain.topup import evaluate_top_up
from sim.fake_mixin_oauth import install_oauth
from sim.world import BTC_USDT_PAIR, DISABLED_PAIR, build_world, dump_toml
from storage import api_auth
from tests.databases import database_url
from tests.support import running_mmflow, wait_until

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {"listen": "127.0.0.1:0", "rate_limit_per_address": "5000/minute", "rate_limit_per_token": "40/minute",
            "rate_limit_intents": "12/minute", "command_wait": 5.0, "access_token_ttl": 900}


@dataclass
class Env:
    base: str
    world: object
    running: object
    ctx: ApiContext
    config_path: Path
    users: dict = field(default_factory=dict)      # role name → user id
    sessions: dict = field(default_factory=dict)   # role name → session JSON (users)
    headers: dict = field(default_factory=dict)    # role name → request headers
    orders: dict = field(default_factory=dict)     # label → order id
    intents: dict = field(default_factory=dict)    # label → intent JSON

    def call(self, method: str, path: str, role: str = "anonymous", **kwargs) -> requests.Response:
        return requests.request(method, self.base + path, headers=self.headers.get(role, {}), timeout=30, **kwargs)


def login(env: Env, user_id: str) -> dict:
    """Mixin OAuth over HTTP: authorize URL from the API, approval on the fake Mixin, code back to the API."""
    start = requests.get(env.base + "/api/v1/auth/mixin", timeout=10).json()
    approval = requests.get(start["authorize_url"], params={"user_id": user_id}, timeout=10).json()["data"]
    assert approval["state"] == start["state"]
    answer = requests.post(env.base + "/api/v1/auth/mixin/callback",
                           json={"code": approval["code"], "state": start["state"]}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def pay_intent(env: Env, user_id: str, base_amount: str, quote_amount: str) -> dict:
    intent = requests.post(env.base + "/api/v1/order-intents", timeout=10,
                           json={"pair_id": BTC_USDT_PAIR, "base_amount": base_amount, "quote_amount": quote_amount})
    assert intent.status_code == 200, intent.text
    body = intent.json()
    for leg in body["legs"]:
        env.world.pay(user_id, leg["asset_id"], leg["amount"], leg["memo"])
    env.running.wait_state(body["order_id"], "payment_complete")
    return body


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    world = build_world()
    install_oauth(world.fake).register_client(world.bot_id)
    settings = {**SETTINGS, "mixin_oauth_authorize_url": world.fake.url + "/oauth/authorize"}
    config_path = tmp / "mmflow.toml"  # the same settings for the CLI subprocesses
    raw = world.config_dict(database_url(tmp / "mmflow.db"), tmp / "keystore.json", api=settings)
    config_path.write_text(dump_toml(raw))
    with running_mmflow(tmp, world, api=settings) as running:
        address = wait_until(lambda: api_address(running.services), message="the API bound")
        ctx = api_app(running.services).extensions["mmflow"]
        env = Env(f"http://{address[0]}:{address[1]}", world, running, ctx, config_path)
        for name in ("owner", "other", "third"):
            env.users[name] = world.new_user()
            env.sessions[name] = login(env, env.users[name])
            env.headers[name] = {"Authorization": f"Bearer {env.sessions[name]['access_token']}"}
        now = time.time()
        for role in ("viewer", "operator"):
            _, plain = api_auth.create_api_token(role, f"test {role}", now, None)
            env.headers[role] = {"Authorization": f"Bearer {plain}"}
        for label, user in (("A", "owner"), ("B", "other"), ("C", "third")):
            env.intents[label] = pay_intent(env, env.users[user], "0.05", "2000")
            env.orders[label] = env.intents[label]["order_id"]
        yield env
    world.fake.stop()


# ---------------------------------------------------------------- who may do what

ROLES = ("anonymous", "other", "owner", "viewer", "operator")
RULES = {  # rule → expected status per role (None: the operation's own answer, given in the table)
    "public": dict.fromkeys(ROLES, 200),
    "any": {"anonymous": 401, "other": 200, "owner": 200, "viewer": 200, "operator": 200},
    "own": {"anonymous": 401, "other": 404, "owner": 200, "viewer": 200, "operator": 200},
    "owner_or_operator": {"anonymous": 401, "other": 404, "owner": None, "viewer": 403, "operator": None},
    "viewer": {"anonymous": 401, "other": 403, "owner": 403, "viewer": 200, "operator": 200},
    "operator": {"anonymous": 401, "other": 403, "owner": 403, "viewer": 403, "operator": None},
}
OPERATIONS = [  # method, path ({A}: the owner's order), JSON body, rule, status when allowed and acting
    ("GET", "/healthz", None, "public", None),
    ("GET", "/readyz", None, "public", None),
    ("GET", "/api/v1/pairs", None, "public", None),
    ("GET", "/api/v1/auth/mixin", None, "public", None),
    ("GET", "/api/v1/me", None, "any", None),
    ("GET", "/api/v1/orders", None, "any", None),
    ("GET", "/api/v1/orders/{A}", None, "own", None),
    ("GET", "/api/v1/orders/{A}/statement", None, "own", None),
    ("GET", "/api/v1/orders/{A}/instructions?base_amount=0.01", None, "own", None),
    ("GET", "/api/v1/orders/{A}/kpi", None, "own", None),
    ("POST", "/api/v1/orders/{A}/pause", {"wait": 0}, "operator", 202),
    ("POST", "/api/v1/orders/{A}/resume", {"wait": 0}, "operator", 202),
    ("POST", "/api/v1/orders/{A}/set-params", {"params": {"end_at": "2031-01-01T00:00:00Z"}, "wait": 0},
     "operator", 202),
    ("POST", "/api/v1/orders/{A}/resolve", {"to": "refunded", "reason": "test", "wait": 0}, "operator", 400),
    ("GET", "/api/v1/attention", None, "viewer", None),
    ("GET", "/api/v1/alerts", None, "viewer", None),
    ("POST", "/api/v1/alerts/987654/ack", None, "operator", 404),
    ("GET", "/api/v1/commands", None, "viewer", None),
    ("GET", "/api/v1/halt", None, "viewer", None),
    ("POST", "/api/v1/halt", {"action": "lift", "reason": "test"}, "operator", 200),
    ("GET", "/api/v1/accounts", None, "viewer", None),
    ("GET", "/api/v1/campaigns", None, "viewer", None),
    ("GET", "/api/v1/sla?day=2026-01-01", None, "viewer", None),
    ("POST", "/api/v1/orders/{A}/exit", {"wait": 0}, "owner_or_operator", 202),  # last: it refunds order A
]


@pytest.mark.parametrize("method,path,body,rule,acting", OPERATIONS, ids=[f"{o[0]} {o[1]}" for o in OPERATIONS])
def test_every_operation_answers_each_role_by_its_rule(env, method, path, body, rule, acting):
    path = path.replace("{A}", env.orders["A"])
    for role in ROLES:
        expected = RULES[rule][role] or acting
        answer = env.call(method, path, role, json=body)
        assert answer.status_code == expected, (role, answer.status_code, answer.text)
        assert answer.headers["Content-Type"].startswith("application/json")
        if expected == 401:
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        if expected >= 400:
            assert set(answer.json()) >= {"error"} and "Traceback" not in answer.text


def test_openapi_declares_security_on_every_operation_that_needs_credentials(env):
    spec = env.call("GET", "/openapi.json").json()
    assert len(spec["paths"]) >= 10
    public = {("get", "/healthz"), ("get", "/readyz"), ("get", "/api/v1/pairs"), ("get", "/api/v1/auth/mixin"),
              ("post", "/api/v1/auth/mixin/callback"), ("post", "/api/v1/auth/refresh"),
              ("post", "/api/v1/order-intents")}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if (method, path) in public:
                assert "security" not in operation, (method, path)
            else:
                assert operation["security"] == [{"bearer": []}], (method, path)
                assert {"401", "403"} <= set(operation["responses"]) or path == "/api/v1/auth/logout"
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_a_user_sees_only_their_own_orders(env):
    a, b = env.orders["A"], env.orders["B"]
    mine = env.call("GET", "/api/v1/orders", "owner", params={"user_id": env.users["other"]}).json()["orders"]
    assert [o["order_id"] for o in mine] == [a]  # a user_id filter of someone else's is ignored for users
    assert env.call("GET", f"/api/v1/orders/{b}", "owner").status_code == 404
    assert env.call("GET", f"/api/v1/orders/{b}/statement", "owner").status_code == 404
    assert env.call("GET", f"/api/v1/orders/{uuid.uuid4()}", "owner").status_code == 404  # same as not there
    everyone = {o["order_id"] for o in env.call("GET", "/api/v1/orders", "viewer").json()["orders"]}
    assert {a, b, env.orders["C"]} <= everyone
    only_b = env.call("GET", "/api/v1/orders", "viewer", params={"user_id": env.users["other"]}).json()["orders"]
    assert [o["order_id"] for o in only_b] == [b]
    detail = env.call("GET", f"/api/v1/orders/{b}", "other").json()
    assert detail["owner"] == env.users["other"] and detail["state"] in ("payment_complete", "refunding", "refunded")
    assert {"history", "tally", "ledger", "fills", "statement", "hufi", "kpi"} <= set(detail)


def test_kpi_series_and_sla_report_of_an_order(env):
    from datetime import datetime, timezone
    from decimal import Decimal

    from domain.kpi import Sample
    from storage.kpi import write_sample

    b = env.orders["B"]
    end = datetime(2026, 3, 4, 12, 0, tzinfo=timezone.utc).timestamp()
    for i, spread in enumerate(("20", "30")):  # two 60 s samples: 60 s and 30 s two-sided of 60 s running each
        write_sample(Sample(order_id=b, ts=end + 60 * i, interval_seconds=60, running_seconds=60,
                            two_sided_seconds=60 - 30 * i, spread_bps=Decimal(spread), maker_volume=Decimal("10"),
                            fills=1, base=Decimal("1"), quote=Decimal("100"), mid=Decimal("100")))
    body = env.call("GET", f"/api/v1/orders/{b}/kpi", "other").json()
    assert [s["spread_bps"] for s in body["samples"]] == ["20", "30"]
    assert body["summary"]["uptime_pct"] == "75"  # (60 + 30) / (60 + 60)
    later = env.call("GET", f"/api/v1/orders/{b}/kpi", "other", params={"since": end + 1}).json()["samples"]
    assert [s["spread_bps"] for s in later] == ["30"]
    assert env.call("GET", f"/api/v1/orders/{b}/kpi", "owner").status_code == 404
    refused = env.call("GET", f"/api/v1/orders/{b}/kpi", "other", params={"since": "yesterday-ish"})
    assert refused.status_code == 400 and "error" in refused.json()
    rows = env.call("GET", "/api/v1/sla", "viewer", params={"day": "2026-03-04", "order_id": b}).json()["rows"]
    assert len(rows) == 1 and rows[0]["order_id"] == b and rows[0]["uptime_pct"] == "75"


def test_metrics_are_served_to_a_scraper(env):
    from prometheus_client.parser import text_string_to_metric_families

    answer = env.call("GET", "/metrics", "anonymous")
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families(answer.text)}
    assert {"mmflow_orders", "mmflow_snapshots_polled", "mmflow_exchange_requests"} <= families


def test_orders_page_by_cursor(env):
    first = env.call("GET", "/api/v1/orders", "viewer", params={"limit": 2}).json()
    assert len(first["orders"]) == 2 and first["next_cursor"]
    rest = env.call("GET", "/api/v1/orders", "viewer", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    ids = [o["order_id"] for o in first["orders"] + rest["orders"]]
    assert len(ids) == len(set(ids)) == 3 and rest["next_cursor"] is None
    assert env.call("GET", "/api/v1/orders", "viewer", params={"cursor": "garbage!"}).status_code == 400
    assert env.call("GET", "/api/v1/orders", "viewer", params={"state": "nonsense"}).status_code == 400


# ---------------------------------------------------------------- order intents and instructions

def test_intent_legs_carry_memos_the_decoder_and_the_payment_rules_accept(env):
    intent = env.intents["C"]
    pair = env.running.services.config.pair(BTC_USDT_PAIR)
    fees = env.running.services.fee_oracle.requirements(pair)
    totals: dict[str, Decimal] = {}
    for leg in intent["legs"]:
        memo = decode_any(leg["memo"])
        assert (memo.order_id, memo.pair_id, memo.action) == (intent["order_id"], BTC_USDT_PAIR, ACTION_CREATE)
        query = parse_qs(urlsplit(leg["pay_url"]).query)
        assert leg["pay_url"].startswith(f"https://mixin.one/pay/{env.world.bot_id}?")
        assert query == {"asset": [leg["asset_id"]], "amount": [leg["amount"]], "memo": [leg["memo"]],
                         "trace": [leg["trace_id"]]}
        totals[leg["asset_id"]] = totals.get(leg["asset_id"], Decimal(0)) + Decimal(leg["amount"])
    assert len(totals) == 3  # BTC, USDT and ETH (USDT-ERC20's withdrawal fee is paid in ETH)
    evaluation = evaluate_payment(totals, pair, fees)
    assert evaluation.status is PaymentStatus.COMPLETE
    assert (evaluation.breakdown.base_principal, evaluation.breakdown.quote_principal) == (Decimal("0.05"),
                                                                                         Decimal("2000"))
    # paid on the fake Mixin (fixture): the order is complete with exactly those principals
    breakdown = env.call("GET", f"/api/v1/orders/{intent['order_id']}", "third").json()["breakdown"]
    assert (breakdown["base_principal"], breakdown["quote_principal"]) == ("0.05", "2000")


def test_intents_refuse_what_cannot_complete(env):
    def ask(**body):
        return env.call("POST", "/api/v1/order-intents", json={"pair_id": BTC_USDT_PAIR, "base_amount": "0.05",
                                                               "quote_amount": "2000", **body})
    assert ask(base_amount="20").status_code == 400                       # above the pair's maximum
    assert "below" in ask(quote_amount="1").json()["error"]               # below the minimum
    assert ask(pair_id=DISABLED_PAIR).status_code == 400
    assert ask(pair_id=str(uuid.uuid4())).status_code == 404
    assert ask(base_amount="0.000000001").status_code == 400            # 9 decimals: not a Mixin amount
    assert ask(base_amount="-1").status_code == 422                      # not even the schema's shape
    assert ask(extra="x").status_code == 422


def test_instructions_exit_and_add_funds(env):
    a = env.orders["A"]
    answer = env.call("GET", f"/api/v1/orders/{a}/instructions", "owner",
                      params={"base_amount": "0.02", "quote_amount": "100"}).json()
    exit_memo = decode_any(answer["exit"]["memo"])
    assert (exit_memo.order_id, exit_memo.action) == (a, ACTION_EXIT)
    legs = answer["add_funds"]["legs"]
    assert {decode_any(leg["memo"]).action for leg in legs} == {ACTION_DEPOSIT}
    pool = {leg["asset_id"]: Decimal(leg["amount"]) for leg in legs}
    pair = env.running.services.config.pair(BTC_USDT_PAIR)
    fees = env.running.services.fee_oracle.requirements(pair)
    top_up = evaluate_top_up(pool, pair, fees)  # the service's own rule for added funds
    assert top_up.ready and {leg.leg: leg.principal for leg in top_up.legs} == {"base": Decimal("0.02"),
                                                                                "quote": Decimal("100")}
    assert not top_up.surplus
    bad = env.call("GET", f"/api/v1/orders/{a}/instructions", "owner", params={"base_amount": "0.123456789"})
    assert bad.status_code in (400, 422)


# ---------------------------------------------------------------- commands through the running service

def test_operator_pause_is_carried_out_by_the_order_supervisor(env):
    b = env.orders["B"]
    answer = env.call("POST", f"/api/v1/orders/{b}/pause", "operator", json={"reason": "api test", "wait": 10})
    assert answer.status_code == 409, answer.text  # the order's actor refused it: it is not running yet
    body = answer.json()
    assert body["status"] == "refused" and "only a running order can be paused" in body["message"]
    listed = env.call("GET", "/api/v1/commands", "viewer", params={"order_id": b}).json()["commands"]
    assert listed[0]["id"] == body["command_id"] and listed[0]["result"] == body["message"]
    queued = env.call("POST", f"/api/v1/orders/{b}/resume", "operator", json={"wait": 0})
    assert queued.status_code == 202 and queued.json()["status"] == "pending"
    assert env.call("POST", f"/api/v1/orders/{uuid.uuid4()}/pause", "operator", json={}).status_code == 404


def test_the_owner_exits_an_order_and_is_refunded(env):
    c = env.orders["C"]
    answer = env.call("POST", f"/api/v1/orders/{c}/exit", "third", json={"reason": "changed my mind", "wait": 10})
    assert answer.status_code == 200, answer.text
    assert answer.json()["message"].startswith("done")
    env.running.wait_state(c, "refunded", timeout=20)
    history = env.call("GET", f"/api/v1/orders/{c}", "third").json()["history"]
    assert any("changed my mind" in h["reason"] for h in history)


def test_halt_and_lift(env):
    on = env.call("POST", "/api/v1/halt", "operator", json={"reason": "maintenance"})
    assert on.status_code == 200 and on.json()["changed"] == 1
    assert [h["reason"] for h in env.call("GET", "/api/v1/halt", "viewer").json()["halts"]] == ["maintenance"]
    assert env.call("POST", "/api/v1/halt", "operator", json={"account": "nope"}).status_code == 400
    off = env.call("POST", "/api/v1/halt", "operator", json={"action": "lift"})
    assert off.json()["changed"] == 1 and off.json()["halts"] == []


# ---------------------------------------------------------------- login, tokens, expiry

def test_a_login_code_is_used_once_and_a_state_belongs_to_its_login(env):
    start = env.call("GET", "/api/v1/auth/mixin").json()
    code = requests.get(start["authorize_url"], params={"user_id": env.users["owner"]}, timeout=10).json()["data"]
    first = env.call("POST", "/api/v1/auth/mixin/callback", json={"code": code["code"], "state": start["state"]})
    assert first.status_code == 200
    again = env.call("POST", "/api/v1/auth/mixin/callback", json={"code": code["code"], "state": start["state"]})
    assert again.status_code == 400  # the state was used up by the first
    other = env.call("GET", "/api/v1/auth/mixin").json()
    replay = env.call("POST", "/api/v1/auth/mixin/callback", json={"code": code["code"], "state": other["state"]})
    assert replay.status_code == 401  # Mixin refuses a used code
    assert env.call("POST", "/api/v1/auth/mixin/callback", json={"code": "x"}).status_code == 400  # PKCE: state


def test_login_by_redirect_and_as_a_confidential_client(env):
    start = env.call("GET", "/api/v1/auth/mixin").json()
    hop = requests.get(start["authorize_url"], timeout=10, allow_redirects=False,
                       params={"user_id": env.users["other"], "return_to": "https://mm.example/login"})
    assert hop.status_code == 302
    back = parse_qs(urlsplit(hop.headers["Location"]).query)
    assert back["state"] == [start["state"]]
    secret = env.world.fake.oauth.clients[env.world.bot_id]
    env.ctx.oauth_client_secret = secret
    try:
        session = env.call("POST", "/api/v1/auth/mixin/callback", json={"code": back["code"][0]})
        assert session.status_code == 200 and session.json()["user_id"] == env.users["other"]
    finally:
        env.ctx.oauth_client_secret = None


def test_access_tokens_expire_and_refresh_tokens_rotate(env):
    session = login(env, env.users["owner"])
    headers = {"Authorization": f"Bearer {session['access_token']}"}
    assert requests.get(env.base + "/api/v1/me", headers=headers, timeout=10).status_code == 200
    real_clock = env.ctx.clock
    env.ctx.clock = lambda: real_clock() + env.ctx.settings.access_token_ttl + 1
    try:
        expired = requests.get(env.base + "/api/v1/me", headers=headers, timeout=10)
        assert expired.status_code == 401 and "expired" in expired.json()["error"]
        renewed = env.call("POST", "/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert renewed.status_code == 200
        fresh = renewed.json()
        assert fresh["refresh_token"] != session["refresh_token"]
        me = requests.get(env.base + "/api/v1/me", timeout=10,
                          headers={"Authorization": f"Bearer {fresh['access_token']}"}).json()
        assert me["user_id"] == env.users["owner"]
    finally:
        env.ctx.clock = real_clock
    # the first refresh token was used: presented again it is a stolen copy, and the whole login ends
    replay = env.call("POST", "/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert replay.status_code == 401
    assert env.call("POST", "/api/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]}).status_code == 401


def test_logout_revokes_the_refresh_token(env):
    session = login(env, env.users["owner"])
    out = env.call("POST", "/api/v1/auth/logout", json={"refresh_token": session["refresh_token"]})
    assert out.status_code == 200 and out.json()["revoked"] == 1
    assert env.call("POST", "/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}).status_code == 401
    assert env.call("POST", "/api/v1/auth/logout").status_code == 401  # neither a token nor a user


def test_api_tokens_revoked_or_expired_open_nothing(env):
    now = time.time()
    row, plain = api_auth.create_api_token("operator", "short-lived", now, now + 60)
    headers = {"Authorization": f"Bearer {plain}"}
    assert requests.get(env.base + "/api/v1/alerts", headers=headers, timeout=10).status_code == 200
    real_clock = env.ctx.clock
    env.ctx.clock = lambda: real_clock() + 61
    try:
        expired = requests.get(env.base + "/api/v1/alerts", headers=headers, timeout=10)
        assert expired.status_code == 401 and "expired" in expired.json()["error"]
    finally:
        env.ctx.clock = real_clock
    api_auth.revoke_api_token(row.id, time.time())
    revoked = requests.get(env.base + "/api/v1/alerts", headers=headers, timeout=10)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]
    forged = {"Authorization": "Bearer mmf_" + "x" * 43}
    assert requests.get(env.base + "/api/v1/alerts", headers=forged, timeout=10).status_code == 401
    jwt_of_someone_else = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}
    assert requests.get(env.base + "/api/v1/me", headers=jwt_of_someone_else, timeout=10).status_code == 401


# ---------------------------------------------------------------- errors and readiness

def test_errors_are_json_never_html(env):
    cases = [("GET", "/no/such/path", None, 404), ("DELETE", "/api/v1/pairs", None, 405),
             ("POST", "/api/v1/order-intents", {"pair_id": "not-a-uuid"}, 422),
             ("GET", f"/api/v1/orders/{env.orders['A']}x", None, 422)]
    for method, path, body, status in cases:
        answer = env.call(method, path, "viewer", json=body)
        assert answer.status_code == status, (path, answer.text)
        assert answer.headers["Content-Type"] == "application/json" and isinstance(answer.json()["error"], str)
    raw = requests.post(env.base + "/api/v1/order-intents", data=b"{not json", timeout=10,
                        headers={"Content-Type": "application/json"})
    assert raw.status_code == 422 and raw.json()["error"]


def test_readyz_names_what_is_not_ready(env):
    ready = env.call("GET", "/readyz").json()
    assert ready["ready"] is True and ready["checks"]["tree"] is True
    alone = ApiContext(config=env.running.services.config, services=None, clock=time.time,
                       settings=env.ctx.settings, secret=b"x" * 32)
    is_ready, reasons, checks = readiness(alone)
    assert not is_ready and checks["tree"] is False and any("actor tree" in r for r in reasons)


# ---------------------------------------------------------------- the tokens command

def run_cli(env: Env, *calls: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
    """`python run.py tokens …` subprocesses, independent ones at once (each spends seconds importing)."""
    procs = [subprocess.Popen([sys.executable, "run.py", "tokens", *args, "--config", str(env.config_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args in calls]
    out = []
    for proc, args in zip(procs, calls):
        stdout, stderr = proc.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(args, proc.returncode, stdout, stderr))
    return out


def test_tokens_command_creates_lists_and_revokes(env):
    made, unknown, bad, wrong_role = run_cli(
        env, ("create", "--role", "viewer", "--name", "dashboard", "--expires-in", "30"), ("revoke", "999999"),
        ("create", "--role", "operator", "--expires-in", "-1"), ("create", "--role", "admin"))
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("mmf_") and len(made.stdout.splitlines()) == 1
    token_id = int(made.stderr.split()[1])
    assert unknown.returncode == 2 and unknown.stderr.strip() == "error: no API token 999999"
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and not bad.stdout
    assert wrong_role.returncode == 2
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(env.base + "/api/v1/attention", headers=headers, timeout=10).status_code == 200
    assert requests.post(env.base + "/api/v1/halt", headers=headers, json={}, timeout=10).status_code == 403
    listed, revoked = run_cli(env, ("list",), ("revoke", str(token_id)))
    line = next(row for row in listed.stdout.splitlines() if row.split()[0] == str(token_id))
    assert "viewer" in line and "dashboard" in line and token not in listed.stdout
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert requests.get(env.base + "/api/v1/attention", headers=headers, timeout=10).status_code == 401


# ---------------------------------------------------------------- rate limits (last: they use up budgets)

def test_rate_limit_per_credential_answers_429_with_retry_after(env):
    _, plain = api_auth.create_api_token("viewer", "flood", time.time(), None)
    headers = {"Authorization": f"Bearer {plain}"}
    limit = int(SETTINGS["rate_limit_per_token"].split("/")[0])
    statuses = [requests.get(env.base + "/api/v1/halt", headers=headers, timeout=10).status_code
                for _ in range(limit + 1)]
    assert statuses[:limit] == [200] * limit and statuses[-1] == 429
    answer = requests.get(env.base + "/api/v1/halt", headers=headers, timeout=10)
    assert answer.status_code == 429 and int(answer.headers["Retry-After"]) > 0
    assert "too many requests" in answer.json()["error"]
    assert env.call("GET", "/api/v1/halt", "viewer").status_code == 200  # another credential is not limited


def test_rate_limit_on_order_intents_per_address(env):
    body = {"pair_id": BTC_USDT_PAIR, "base_amount": "0.05", "quote_amount": "2000"}
    statuses = []
    for _ in range(int(SETTINGS["rate_limit_intents"].split("/")[0]) + 1):
        statuses.append(env.call("POST", "/api/v1/order-intents", json=body).status_code)
        if statuses[-1] == 429:
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) <= {200}
    answer = env.call("POST", "/api/v1/order-intents", json=body)
    assert answer.status_code == 429 and int(answer.headers["Retry-After"]) > 0
    assert env.call("GET", "/api/v1/pairs").status_code == 200  # other operations keep their own budget


def test_json_decimal_money_is_a_string(env):
    pairs = env.call("GET", "/api/v1/pairs").json()["pairs"]
    btc = next(p for p in pairs if p["pair_id"] == BTC_USDT_PAIR)
    assert btc["min_base_amount"] == "0.001" and btc["fees"]["withdrawal"]["base"]["amount"] == "0.0001"
    assert json.loads(json.dumps(btc)) == btc
