"""``/docs`` (Swagger UI) and ``/redoc`` render in headless Chromium with no network but
loopback (issue 12 item 6: "``/docs`` is a blank page offline").

The pytest test starts ``python -m tests.test_docs_browser WORKDIR`` in a fresh network
namespace (``unshare --net``: only ``lo``, no route anywhere, as ``tests/test_browser.py``
does), so a page that needs a CDN stays blank. There the API (``create_app``, served by
uvicorn on 127.0.0.1 without its lifespan: the documentation needs neither PostgreSQL nor
Temporal) answers Chromium (Debian's, through chromedriver). The scenario checks what a
person sees: Swagger UI lists the operations (``.opblock``), an operation opened shows its
problem responses, "Authorize" offers both schemes; ReDoc lists the operations too; every
resource the pages loaded came from the API's origin. It saves screenshots
(``WORKDIR/docs.png``, ``docs-place-call.png``, ``docs-authorize.png``, ``redoc.png``) and
``WORKDIR/report.json``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tests.browser_helpers import require_chromium, run_in_network_namespace
from tests.test_browser import loopback_up, start_chromium

REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
"""ReDoc's "API docs by Redocly" menu footer loads it; the docs pages' CSP refuses it."""

CSP_REFUSED = re.compile(r"'(https?://[^']+)' violates the following Content Security Policy")

SCENARIO_TIMEOUT_S = 120.0
"""The whole scenario must finish within this, seconds."""

WAIT_S = 30.0
"""Longest wait for a page to render, seconds."""


def test_docs_and_redoc_render_offline_in_headless_chromium(tmp_path: Path) -> None:
    require_chromium()
    # the screenshots are beside the report
    report = run_in_network_namespace(
        "tests.test_docs_browser", tmp_path, what="docs", timeout_s=SCENARIO_TIMEOUT_S + 30
    )
    assert report["interfaces"] == ["lo"]
    docs = report["docs"]
    assert docs["operations"] >= 40 and docs["operations"] == report["openapi_operations"]
    assert "/v1/calls" in docs["paths"] and "/v1/devices/{sn}" in docs["paths"]
    assert {"401", "409", "429"} <= set(docs["opened_responses"]), docs["opened_responses"]
    assert "application/problem+json" in docs["opened_text"]
    assert {"BackendApiKey", "PartyToken"} <= set(docs["authorize_schemes"]), docs["authorize_schemes"]
    assert report["redoc"]["operations"] >= 40
    for page in ("docs", "redoc"):
        # every resource from the API's origin, but what the page's CSP refused (the browser
        # never asked for it): only ReDoc's menu logo, which ReDoc hides when it fails
        found = report[page]
        refused = {m.group(1) for m in map(CSP_REFUSED.search, found["severe_console"]) if m}
        assert refused <= {REDOCLY_LOGO}, refused
        assert found["resources"] and all(
            u.startswith(report["base_url"]) or u in refused for u in found["resources"]
        ), found["resources"]
        assert [m for m in found["severe_console"] if not CSP_REFUSED.search(m)] == [], found
    for name in ("docs.png", "docs-place-call.png", "docs-authorize.png", "redoc.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name


# ---------------------------------------------------------------- scenario (in the namespace)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_api(port: int) -> Any:
    """The API on 127.0.0.1:``port`` in a daemon thread, without its lifespan; returns the
    uvicorn server (``should_exit = True`` stops it) once it accepts connections."""
    import uvicorn

    from api.app import create_app
    from ringflow.settings import Settings

    config = uvicorn.Config(
        create_app(Settings()), host="127.0.0.1", port=port, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("the API did not start")
        time.sleep(0.05)
    return server


def _resources(driver: Any) -> list[str]:
    """URLs of the page and every resource it loaded (the Resource Timing API)."""
    return list(
        driver.execute_script(
            "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name))"
        )
    )


def _severe(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def swagger_ui(driver: Any, base_url: str, workdir: Path) -> dict[str, Any]:
    """Open ``/docs``: operations listed, ``POST /v1/calls`` opened (its responses),
    "Authorize" opened (its schemes); screenshots ``docs.png``, ``docs-authorize.png``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, WAIT_S)
    driver.get(f"{base_url}/docs")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) >= 40)
    # an operation with two tags is listed twice: count (method, path) pairs
    operations = driver.execute_script(
        "return [...document.querySelectorAll('.opblock')].map(b => "
        "b.querySelector('.opblock-summary-method').textContent + ' ' + "
        "b.querySelector('.opblock-summary-path').getAttribute('data-path'))"
    )
    paths = sorted({op.split(" ", 1)[1] for op in operations})
    # open POST /v1/calls: its responses table, with the problem responses
    place = driver.find_element(
        By.CSS_SELECTOR, "#operations-calls-place_call_v1_calls_post .opblock-summary"
    )
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", place)
    place.click()
    wait.until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#operations-calls-place_call_v1_calls_post .response")
    )
    opened = driver.find_element(By.CSS_SELECTOR, "#operations-calls-place_call_v1_calls_post")
    responses = [
        r.get_attribute("data-code") or "" for r in opened.find_elements(By.CSS_SELECTOR, "tr.response")
    ]
    first = opened.find_element(By.CSS_SELECTOR, "tr.response[data-code='401']")
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", first)
    driver.save_screenshot(str(workdir / "docs-place-call.png"))
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(workdir / "docs.png"))
    # "Authorize": both schemes
    driver.find_element(By.CSS_SELECTOR, "button.authorize").click()
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".modal-ux")))
    schemes = [
        h.text.split(" ")[0] for h in driver.find_elements(By.CSS_SELECTOR, ".modal-ux .auth-container h4")
    ]
    driver.save_screenshot(str(workdir / "docs-authorize.png"))
    return {
        "operations": len(set(operations)),
        "paths": paths,
        "opened_responses": responses,
        "opened_text": opened.text,
        "authorize_schemes": schemes,
        "resources": _resources(driver),
        "severe_console": _severe(driver),
    }


def redoc(driver: Any, base_url: str, workdir: Path) -> dict[str, Any]:
    """Open ``/redoc``: the side menu lists the operations; screenshot ``redoc.png``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base_url}/redoc")
    operation = "li[data-item-id^='tag/'][data-item-id*='/operation/']"
    WebDriverWait(driver, WAIT_S).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, operation)) >= 40)
    time.sleep(0.5)  # let the first section finish painting
    driver.save_screenshot(str(workdir / "redoc.png"))
    return {
        "operations": len(driver.find_elements(By.CSS_SELECTOR, operation)),
        "resources": _resources(driver),
        "severe_console": _severe(driver),
    }


def scenario(workdir: Path) -> dict[str, Any]:
    """Loopback up, the API served, Chromium on ``/docs`` and ``/redoc``: the report."""
    interfaces = loopback_up()
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = serve_api(port)
    driver = start_chromium(workdir)
    try:
        driver.set_window_size(1280, 1400)
        import httpx

        spec = httpx.get(f"{base_url}/openapi.json").json()
        count = sum(
            1
            for item in spec["paths"].values()
            for method in item
            if method in ("get", "put", "post", "patch", "delete")
        )
        return {
            "interfaces": interfaces,
            "base_url": base_url,
            "openapi_operations": count,
            "docs": swagger_ui(driver, base_url, workdir),
            "redoc": redoc(driver, base_url, workdir),
        }
    finally:
        driver.quit()
        server.should_exit = True


def main(argv: list[str]) -> int:
    """``python -m tests.test_docs_browser WORKDIR``: run the scenario, write ``WORKDIR/report.json``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never download
    workdir = Path(argv[1]).resolve()
    report = scenario(workdir)
    (workdir / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
