"""The console in headless Chromium: live lag, a search, one dead letter, dry run and replay as an operator,
the event handled by its group; a viewer without controls whose forged post gets 403.

Screenshots go to ``$KEP_CONSOLE_SCREENSHOTS`` (``docs/img`` refreshes the documentation's), else tmp.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from kep.consumers.app import App
from kep.consumers.context import MessageContext
from kep.producers.producer import EventProducer
from kep.topology.settings import KafkaSettings
from shop.orders import LineItem, OrderPlaced
from tests.console.browser import chromium, screenshot
from tests.console.conftest import TOKEN, Served
from tests.dlq.conftest import T0
from tests.support.runtime import Setup, running
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSTILE = "<script>alert(1)</script>"
WAIT = 30.0


class PaymentGatewayDownError(Exception):
    """What the broken handler raises until it is fixed."""


def _order(order_id: str, customer: str = "c-1") -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer_id=customer,
        items=[LineItem(sku="sku-1", quantity=1, unit_price_cents=500)],
        amount_cents=500,
        currency="EUR",
    )


def _publish(served: Served, events: list[OrderPlaced]) -> None:
    kafka = KafkaSettings(bootstrap_servers=served.cluster.kafka)
    with EventProducer(kafka, served.cluster.topology) as producer:
        for event in events:
            producer.publish(event, topic=served.cluster.source)
        assert producer.flush(30) == 0


def _text(driver: WebDriver, css: str) -> str:
    """The element's text, read in one script call: htmx may swap the element between two WebDriver calls."""
    script = "const e = document.querySelector(arguments[0]); return e ? e.innerText.trim() : '';"
    return str(driver.execute_script(script, css))


def _until(driver: WebDriver, condition: object, message: str, timeout: float = WAIT) -> object:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition, message)  # type: ignore[arg-type]


def _no_alert(driver: WebDriver) -> None:
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return
    text = alert.text
    alert.dismiss()
    raise AssertionError(f"a script ran in the page: alert({text!r})")


def _login(driver: WebDriver, served: Served, name: str = "alice") -> None:
    driver.get(f"{served.url}/login")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.ID, "login").click()
    _until(driver, lambda d: _text(d, "#role") == f"operator: {name}", "logged in as operator")


def test_groups_page_shows_lag_change_while_events_are_produced(served: Served, tmp_path: Path) -> None:
    cluster = served.cluster
    cluster.commit(cluster.group, {0: 0, 1: 0})
    lag = f'[data-group="{cluster.group}"] [data-field="lag"]'
    with chromium(tmp_path / "profile") as driver:
        driver.get(f"{served.url}/groups")
        _until(driver, lambda d: _text(d, lag) == "0", "the group with no lag")
        driver.execute_script("window.keptAcrossUpdates = true")
        _publish(served, [_order(f"o-{i}") for i in range(25)])
        _until(driver, lambda d: _text(d, lag) == "25", "lag of 25 shown without a reload")
        assert driver.execute_script("return window.keptAcrossUpdates") is True  # no reload happened
        topic = f'[data-group="{cluster.group}"] [data-topic="{cluster.source}"]'
        assert _text(driver, f"{topic} [data-field=topic-lag]") == "25"
        assert driver.find_elements(By.CSS_SELECTOR, f'[data-tier="{cluster.tier}"]')
        screenshot(driver, "console-groups.png", tmp_path)


def test_operator_searches_opens_dry_runs_replays_and_the_group_handles_it(
    served: Served, tmp_path: Path
) -> None:
    cluster = served.cluster
    fixed = threading.Event()
    handled: list[str] = []
    app = App(cluster.group, topics=[cluster.source])

    @app.handler(cluster.source)
    def bill(order: OrderPlaced, ctx: MessageContext) -> None:
        if order.customer_id == "c-broken" and not fixed.is_set():
            raise PaymentGatewayDownError(f"gateway down while billing {order.order_id}")
        handled.append(order.event_id)

    broken = _order("k-[/]", customer="c-broken")
    hostile = _order(f"o-{HOSTILE}", customer="c-broken")
    setup = Setup(
        KafkaSettings(bootstrap_servers=cluster.kafka), cluster.topology, cluster.source, cluster.group
    )
    with running(app, setup):
        _publish(served, [_order(f"o-{i}") for i in range(10)] + [broken, hostile])
        wait_until(lambda: len(handled) == 10, message="the healthy orders handled", timeout=WAIT)
        with chromium(tmp_path / "profile") as driver:
            _login(driver, served)
            search = f"{served.url}/dead-letters/{cluster.dlq}"

            def both_dead_lettered(d: WebDriver) -> bool:
                d.get(search)
                return _text(d, "#total") == "2"

            _until(driver, both_dead_lettered, "both broken orders dead-lettered (after the 1 s retry)")
            _no_alert(driver)
            assert f"o-{HOSTILE}" in _text(driver, "table.dead-letters")

            driver.find_element(By.NAME, "exception").send_keys("PaymentGatewayDownError")
            driver.find_element(By.NAME, "key").send_keys("k-[/]")
            driver.find_element(By.ID, "search").click()
            _until(driver, lambda d: _text(d, "#total") == "1", "one match for the key")
            screenshot(driver, "console-search.png", tmp_path)

            driver.find_element(By.CSS_SELECTOR, "table.dead-letters a.open").click()
            _until(driver, lambda d: d.find_elements(By.ID, "payload"), "the dead letter's page")
            assert '"order_id": "k-[/]"' in _text(driver, "#payload")
            assert "PaymentGatewayDownError: gateway down while billing k-[/]" in _text(driver, "#traceback")
            headers = _text(driver, "#headers")
            assert "kep-original-topic" in headers and "kep-idempotency-key" in headers
            screenshot(driver, "console-dead-letter.png", tmp_path)

            fixed.set()  # the fix is deployed; now replay
            driver.find_element(By.ID, "replay-one").click()
            _until(driver, lambda d: _text(d, "#would-replay") == "1", "the dry run")
            assert cluster.source in _text(driver, "#targets")
            assert _text(driver, "#action-status") == "planned"
            assert broken.event_id not in handled  # nothing was sent by the dry run
            screenshot(driver, "console-dry-run.png", tmp_path)

            driver.find_element(By.ID, "run").click()
            _until(driver, lambda d: _text(d, "#replayed-count") == "1", "the replay's outcome")
            assert _text(driver, "#action-status") == "done"
            wait_until(lambda: broken.event_id in handled, message="the replayed order handled", timeout=WAIT)
            assert hostile.event_id not in handled  # only the selected dead letter was replayed
            screenshot(driver, "console-replayed.png", tmp_path)

            driver.get(f"{served.url}/audit")
            assert "alice (token login)" in _text(driver, "#audit")
            driver.get(f"{search}?state=pending")
            _until(driver, lambda d: _text(d, "#total") == "1", "one dead letter still pending")
            _no_alert(driver)


def test_viewer_has_no_replay_control_and_a_forged_post_gets_403(served: Served, tmp_path: Path) -> None:
    letters = served.cluster.dead_letters
    letters.add(partition=0, exc=TimeoutError(HOSTILE), failed_at_ms=T0, key=HOSTILE.encode())
    with chromium(tmp_path / "profile", width=390, height=844) as driver:  # a phone's width
        search = f"{served.url}/dead-letters/{letters.dlq}"

        def indexed(d: WebDriver) -> bool:
            d.get(search)
            return _text(d, "#total") == "1"

        _until(driver, indexed, "the dead letter indexed")
        assert _text(driver, "#role") == "read-only"
        assert not driver.find_elements(By.CSS_SELECTOR, "input[name=ref]")
        assert not driver.find_elements(By.ID, "replay-selected")
        driver.find_element(By.CSS_SELECTOR, "table.dead-letters a.open").click()
        _until(driver, lambda d: d.find_elements(By.ID, "key"), "the dead letter's page")
        _no_alert(driver)
        assert _text(driver, "#key") == HOSTILE
        assert not driver.find_elements(By.ID, "replay-one")
        screenshot(driver, "console-phone-viewer.png", tmp_path)
        status = driver.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            const body = new URLSearchParams({ref: "0:0", csrf_token: "forged"});
            fetch(arguments[0], {method: "POST", body: body, headers: {"Accept": "application/json"}})
              .then(r => done(r.status), e => done(String(e)));
            """,
            f"{search}/replay",
        )
        assert status == 403
