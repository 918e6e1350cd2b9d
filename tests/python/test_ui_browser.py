"""The UI as a person sees it: headless Chromium (Debian's package, driven by Playwright)
against a real `meshctl ui` process. With credentials the app loads, lists the models and opens
a model's lineage; without them (or with wrong ones) the browser gets 401."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlmesh
from playwright.sync_api import Error, sync_playwright

from service_helpers import free_port, make_project, service_env, spawn_meshctl, terminating, wait_http

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
USER, PASSWORD = "admin", "correct-horse-battery"


@pytest.fixture(scope="module")
def ui(pg_server, tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium (see .ci/run)", pytrace=False)
    root = tmp_path_factory.mktemp("ui")
    project = make_project(root)
    dbname = f"meshtest_ui_{uuid.uuid4().hex[:10]}"
    admin = pg_server.connect()
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{dbname}"')
    port = free_port()
    env = service_env(project, pg_server.env(dbname), MESHCTL_UI_USERNAME=USER, MESHCTL_UI_PASSWORD=PASSWORD)
    log = root / "ui.log"
    proc = spawn_meshctl("ui", "--host", "127.0.0.1", "--port", str(port), env=env, log=log)
    try:
        with terminating(proc):
            wait_http(f"http://127.0.0.1:{port}/healthz", 60, proc, log)
            yield f"http://127.0.0.1:{port}", root
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def browser():
    # One browser per test: Chromium keeps HTTP auth state across the contexts of one browser,
    # which would let one test's credentials leak into the next.
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_with_credentials_the_ui_lists_models_and_opens_lineage(ui, browser):
    base, root = ui
    context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD}, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        response = page.goto(base + "/", wait_until="domcontentloaded")
        assert response.status == 200
        page.get_by_text(f"SQLMesh: {sqlmesh.__version__}", exact=False).first.wait_for()  # the app rendered

        page.goto(base + "/lineage", wait_until="domcontentloaded")
        for name in ("daily_event_counts", "stg_events", "EVENTS"):
            page.get_by_text(name, exact=True).first.wait_for()  # the model list

        with page.expect_response(lambda r: "/api/lineage/" in r.url) as lineage:
            page.get_by_text("daily_event_counts", exact=True).first.click()
        assert lineage.value.status == 200
        page.wait_for_url("**/lineage/models/marts.daily_event_counts")
        nodes = page.locator(".react-flow__node")
        nodes.nth(2).wait_for()
        texts = [nodes.nth(i).inner_text() for i in range(nodes.count())]
        assert any("marts.daily_event_counts" in t for t in texts)
        assert any("staging.stg_events" in t for t in texts), texts  # upstream model
        assert any("GOODWORD_WH.RAW.EVENTS" in t for t in texts), texts  # its RAW source
        page.screenshot(path=str(root / "lineage.png"))
    finally:
        context.close()


def _refused(context, url: str) -> None:
    """The browser cannot get `url`: the server answers 401 with a Basic challenge, and a page
    navigation ends on that 401 (or, when Chromium gives up on the challenge itself, on
    ERR_INVALID_AUTH_CREDENTIALS) without any of the app's content."""
    response = context.request.get(url)
    assert response.status == 401, url
    assert response.headers["www-authenticate"].startswith("Basic realm=")
    assert b"stg_events" not in response.body()
    page = context.new_page()
    try:
        navigation = page.goto(url)
    except Error as exc:
        assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
    else:
        assert navigation.status == 401
        assert "stg_events" not in page.content()
    page.close()


def test_without_credentials_the_browser_gets_401(ui, browser):
    base, _ = ui
    context = browser.new_context()
    try:
        for path in ("/", "/lineage", "/api/models"):
            _refused(context, base + path)
        # The health endpoint alone is open (the container health check has no credentials).
        assert context.new_page().goto(base + "/healthz").status == 200
    finally:
        context.close()


@pytest.mark.parametrize("username, password", [(USER, "wrong"), ("root", PASSWORD), (USER, "")])
def test_wrong_credentials_are_refused(ui, browser, username, password):
    base, _ = ui
    context = browser.new_context(http_credentials={"username": username, "password": password})
    try:
        for path in ("/lineage", "/api/models"):
            _refused(context, base + path)
    finally:
        context.close()
