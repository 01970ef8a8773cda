"""The web dashboard in a real browser: Debian's chromium driven by Playwright against the real service — the
actor tree with its API child on loopback, the fake Mixin (with OAuth) and the fake exchange.

A user logs in with Mixin (authorize → code → the dashboard's callback), asks for a new order and pays its
legs from the pay links the page shows, and watches the order go live over the WebSocket; a user exits from
the order page and reads the final statement; an operator logs in with an API token, pauses an order,
acknowledges an alert, halts and lifts, and resolves an order in attention. Every view writes a screenshot to
$MMFLOW_SCREENSHOTS (default: a pytest tmp dir).

One service and one browser for the module; every wait is on a condition (Playwright's expect/wait_for, or
wait_until on the database), never a sleep.
"""
from __future__ import annotations

import os
import re
import socket
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed at /usr/bin/chromium (.ci/run installs it)")

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from sim.bridge import world_with_exchange  # noqa: E402
from sim.fake_mixin_oauth import install_oauth  # noqa: E402
from domain.memo import encode_market_making  # noqa: E402
from sim.world import BTC, BTC_USDT_PAIR, new_order_id  # noqa: E402
from storage import repo  # noqa: E402
from storage.api_auth import create_api_token  # noqa: E402
from storage.models import Alert  # noqa: E402
from tests.support import running_mmflow, wait_until  # noqa: E402
from tests.test_flow_exit import FUNDING, pairs, pay  # noqa: E402
from tests.test_flow_funding import exchange_table  # noqa: E402

WIDE = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Short-lived user logins, so the page's refresh (before expiry) happens during the tests.
ACCESS_TOKEN_TTL = 10
# Generous for a machine another process keeps busy: these are upper bounds, not expected durations.
UI_TIMEOUT_MS = 30_000
FLOW_TIMEOUT = 60.0
# KPI samples every second, so charts fill during the test.
KPI_CONFIG = {"kpi": {"sample_interval": 1}}


def _free_port() -> int:
    # The OAuth return address must be configured before the server binds, so the port is picked first.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Site:
    """The running service with its dashboard, and what the tests need to drive it."""

    def __init__(self, ew, mm, base_url: str, shots: Path, browser) -> None:
        self.ew, self.mm, self.base_url, self.shots, self.browser = ew, mm, base_url, shots, browser

    def new_page(self, viewport=WIDE):
        context = self.browser.new_context(viewport=viewport)
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.errors = errors
        return page

    def shot(self, page, name: str) -> None:
        page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def login_user(self, page, user_id: str) -> None:
        """Log in through the page's "Log in with Mixin" button. The fake Mixin has no login page: the user
        who approves is named on the authorize request (what a real user does by tapping Authorize)."""
        page.route(re.compile(r"/oauth/authorize\?"),
                   lambda route: route.continue_(url=f"{route.request.url}&user_id={user_id}"))
        page.goto(self.base_url + "/")
        page.get_by_role("button", name="Log in with Mixin").click()
        expect(page.get_by_role("heading", name="My orders")).to_be_visible()
        assert "code=" not in page.url  # the callback's query is dropped once used

    def login_operator(self, page) -> None:
        _, token = create_api_token("operator", "dashboard browser test", time.time(), None)
        page.goto(self.base_url + "/")
        page.get_by_label("API token").fill(token)
        page.get_by_role("button", name="Log in with token").click()
        expect(page.locator("#orders-list table")).to_be_visible()

    def running_order(self, user: str) -> str:
        _, order_id = pay(self.ew, self.mm, user=user)
        self.mm.wait_state(order_id, "running", timeout=FLOW_TIMEOUT)
        return order_id

    def open_order(self, page, order_id: str) -> None:
        page.goto(f"{self.base_url}/#/orders/{order_id}")
        expect(page.get_by_role("heading", name=re.compile("^Order"))).to_be_visible()
        expect(page.locator("#live-status")).to_have_attribute("data-status", "live")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    shots = Path(os.environ.get("MMFLOW_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_factory.mktemp("dashboard")
    with pytest.MonkeyPatch.context() as patch:
        ew = world_with_exchange(deposit_delay=0.1)
        ew.exchange.withdraw_delay = 0.1
        patch.setenv("MMF_BINANCE_KEY", ew.api_key)
        patch.setenv("MMF_BINANCE_SECRET", ew.secret)
        install_oauth(ew.world.fake).register_client(ew.world.bot_id)
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        api = {"listen": f"127.0.0.1:{port}", "public_base_url": base_url, "access_token_ttl": ACCESS_TOKEN_TTL,
               "command_wait": 30,  # a command answers "done" even on a busy machine (5 s by default)
               "mixin_oauth_authorize_url": f"{ew.world.fake.url}/oauth/authorize"}
        try:
            with running_mmflow(tmp, ew.world, exchanges=[exchange_table(ew)], funding=dict(FUNDING), pairs=pairs(),
                                strategy={"tick_interval": 0.1}, stream={"slow_interval": 0.2, "fast_interval": 0.05},
                                api=api, **KPI_CONFIG) as mm:
                wait_until(lambda: _answers(f"{base_url}/healthz"), timeout=30, message="the API serving")
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
                    try:
                        yield Site(ew, mm, base_url, shots, browser)
                    finally:
                        browser.close()
        finally:
            ew.stop()
            ew.world.fake.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _pay_leg_from_link(site: Site, user: str, pay_url: str) -> None:
    """What the user's Mixin wallet does with a pay link: send that asset and amount with that memo."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(pay_url).query).items()}
    site.ew.world.pay(user, query["asset"], Decimal(query["amount"]), query["memo"])


def test_user_logs_in_pays_from_the_pay_links_and_follows_the_order_live(site):
    user = site.ew.world.new_user()
    page = site.new_page()
    page.goto(site.base_url + "/")
    expect(page.get_by_role("button", name="Log in with Mixin")).to_be_visible()
    site.shot(page, "login")
    site.login_user(page, user)

    page.get_by_role("link", name="New order").first.click()
    expect(page.locator("#pair option")).not_to_have_count(0)
    page.get_by_label("Pair").select_option(BTC_USDT_PAIR)
    page.locator("#base-amount").fill("0.1")
    page.locator("#quote-amount").fill("5000")
    page.get_by_role("button", name="Get payment instructions").click()
    expect(page.locator("#intent-order")).to_be_visible()
    order_id = page.locator("#intent-order").inner_text().strip()
    links = [a.get_attribute("href") for a in page.get_by_role("link", name="Pay with Mixin").all()]
    assert len(links) >= 2 and all(link.startswith("https://mixin.one/pay/") for link in links)
    site.shot(page, "new-order")

    # The first transfer makes the order (payment_pending); it shows in "my orders".
    _pay_leg_from_link(site, user, links[0])
    page.get_by_role("link", name="My orders").click()
    row = page.get_by_role("link", name=f"order {order_id}")
    expect(row).to_be_visible()
    site.shot(page, "user-orders")
    row.click()
    expect(page.locator("#order-state")).to_have_attribute("data-state", "payment_pending")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live")

    # The rest of the payment arrives while the user watches: the page follows over the stream alone.
    for link in links[1:]:
        _pay_leg_from_link(site, user, link)
    expect(page.locator("#order-state")).to_have_attribute("data-state", "running", timeout=FLOW_TIMEOUT * 1000)
    expect(page.locator("#error")).to_be_hidden()
    # The login outlived its 10-second access token: the page refreshed it (and the refresh token rotated).
    first = page.evaluate("JSON.parse(sessionStorage.getItem('mmflow.session')).access_token")
    page.wait_for_function("t => JSON.parse(sessionStorage.getItem('mmflow.session')).access_token !== t", arg=first)
    page.reload()
    expect(page.locator("#order-state")).to_have_attribute("data-state", "running")
    expect(page.locator("#error")).to_be_hidden()
    # New samples come over the stream and the four charts redraw with them.
    expect(page.locator(".charts")).to_have_attribute("data-samples", re.compile(r"^([3-9]|\d{2,})$"))
    expect(page.locator("figure.chart canvas")).to_have_count(4)
    expect(page.locator("#kpi-summary")).to_contain_text("two-sided uptime %")
    site.shot(page, "user-order")
    assert page.errors == []


def test_user_exits_from_the_order_page_and_reads_the_final_statement(site):
    user = site.ew.world.new_user()
    order_id = site.running_order(user)
    page = site.new_page()
    site.login_user(page, user)
    site.open_order(page, order_id)
    expect(page.locator("#order-state")).to_have_attribute("data-state", "running")

    page.get_by_role("button", name="Open the statement so far").click()
    expect(page.locator("#statement")).to_contain_text("Statement so far")
    expect(page.locator("#statement table")).to_contain_text("paid in")

    page.get_by_role("button", name="Exit…").click()
    page.get_by_role("button", name="Yes, exit").click()
    expect(page.locator("#action-outcome")).to_have_attribute("data-status", re.compile("done|pending"))
    site.mm.wait_state(order_id, "settled", timeout=FLOW_TIMEOUT)
    expect(page.locator("#order-state")).to_have_attribute("data-state", "settled")
    expect(page.locator("#statement")).to_contain_text("Final statement: balances exactly.")
    expect(page.locator("#statement table")).to_contain_text("paid out")
    expect(page.get_by_role("button", name="Exit…")).to_have_count(0)
    page.locator("#statement").scroll_into_view_if_needed()
    site.shot(page, "statement")
    assert page.errors == []


def test_operator_pauses_an_order_acknowledges_an_alert_halts_and_resolves(site):
    order_id = site.running_order(site.ew.world.new_user())
    alert = Alert.create(kind="exchange_unreachable", subject="binance", created_at=time.time(),
                         message="binance: timed out (raised by the dashboard test)")
    page = site.new_page()
    site.login_operator(page)
    page.get_by_label("State").select_option("running")
    expect(page.get_by_role("link", name=f"order {order_id}")).to_be_visible()
    site.shot(page, "operator-orders")

    page.get_by_role("link", name=f"order {order_id}").click()
    expect(page.locator("#order-state")).to_have_attribute("data-state", "running")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#action-outcome")).to_have_attribute("data-status", "done")
    expect(page.locator("#order-state")).to_have_attribute("data-state", "paused")
    assert repo.load_order(order_id).state.value == "paused"
    expect(page.get_by_role("button", name="Resume")).to_be_visible()
    site.shot(page, "operator-order")

    page.goto(f"{site.base_url}/#/ops/alerts")
    ack = page.locator(f"button[data-alert='{alert.id}']")
    expect(ack).to_be_visible()
    site.shot(page, "operator-alerts")
    ack.click()
    expect(ack).to_have_count(0)  # acknowledged alerts leave the open list
    assert Alert.get_by_id(alert.id).acked_at is not None

    # Halt quoting everywhere, see it in force, lift it again.
    page.goto(f"{site.base_url}/#/ops/halt")
    expect(page.locator("#halt-status")).to_contain_text("No halt in force")
    page.get_by_label("Reason").fill("maintenance window")
    page.get_by_role("button", name="Halt quoting").click()
    expect(page.locator("#halt-status")).to_contain_text("maintenance window")
    site.shot(page, "operator-halt")
    page.get_by_role("button", name="Lift").click()
    expect(page.locator("#halt-status")).to_contain_text("No halt in force")

    # A deposit from outside Mixin with an order's memo needs an operator: resolve it from the queue.
    stray = new_order_id()
    site.ew.world.fake.deposit(site.ew.world.bot_id, BTC, "0.2", memo=encode_market_making(BTC_USDT_PAIR, stray))
    site.mm.wait_state(stray, "attention", timeout=FLOW_TIMEOUT)
    page.goto(f"{site.base_url}/#/ops/attention")
    card = page.locator("section.attention", has_text=stray)
    expect(card).to_contain_text("outside Mixin")
    card.get_by_label("Move to").select_option("payment_pending")
    expect(card).to_contain_text("back to waiting for payment")
    card.get_by_label("Reason").fill("checked with the user: their own deposit")
    site.shot(page, "operator-attention")
    card.get_by_role("button", name="Resolve").click()
    expect(page.locator("#attention-outcome")).to_have_attribute("data-status", "done")
    expect(card).to_have_count(0)
    assert repo.load_order(stray).state.value == "payment_pending"

    page.goto(f"{site.base_url}/#/ops/accounts")
    expect(page.locator("#ops-accounts")).to_contain_text("binance")
    site.shot(page, "operator-accounts")
    assert page.errors == []


def test_phone_width_and_errors_in_one_line(site):
    page = site.new_page(PHONE)
    site.login_operator(page)
    expect(page.locator("#orders-list table")).to_be_visible()
    # Nothing wider than the screen but the tables, which scroll inside their own box.
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    site.shot(page, "phone-operator-orders")
    page.locator("#orders-list a").first.click()
    expect(page.locator("#order-state")).to_have_attribute("data-state", re.compile("."))
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    site.shot(page, "phone-order")
    # An API error (here an unknown order) is the server's one line, never a page of stack.
    page.goto(f"{site.base_url}/#/orders/00000000-0000-4000-8000-000000000000")
    expect(page.locator("#error")).to_have_text(re.compile(r"^Error: no order 00000000-"))
    assert "\n" not in page.locator("#error").inner_text()
    assert page.errors == []
