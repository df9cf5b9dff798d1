"""The admin web page in a real browser.

Starts the real kyro-server and kyro-gateway (temporary directories,
ephemeral ports, the same way api-gateway/tests/common/mod.rs does), then
drives Debian's headless Chromium with Playwright: signs in with the admin
key, creates a customer and a key, captures episodes with that key over
REST and sees the usage change on the page, revokes the key (REST then
refuses it), reads the audit log, the engine figures and the latency
charts, searches the customer's episodes, suspends the customer, and checks
that a key without the admin scope cannot sign in. Screenshots of each page
go to docs/admin/. Run it with scripts/test-browser.sh.

Environment: KYRO_SERVER_BIN, KYRO_GATEWAY_BIN (default
${CARGO_TARGET_DIR:-target}/debug/…), KYRO_CHROMIUM (default
/usr/bin/chromium), KYRO_SCREENSHOTS (default docs/admin).
"""

import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

REPO = Path(__file__).resolve().parents[3]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
SERVER_BIN = os.environ.get("KYRO_SERVER_BIN", str(TARGET / "debug" / "kyro-server"))
GATEWAY_BIN = os.environ.get("KYRO_GATEWAY_BIN", str(TARGET / "debug" / "kyro-gateway"))
CHROMIUM = os.environ.get("KYRO_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("KYRO_SCREENSHOTS", REPO / "docs" / "admin"))
# The gateway's kyro-server key. It also has `admin`, so the engine page shows
# instance-wide figures (caches, fsyncs); docs/gateway.md explains the choice.
SERVICE_KEY = "kyro_sk_gateway_browser_test_key"

GOAL = "install numpy in a fresh python 3.12 virtualenv"
EPISODES = [
    {
        "goal": GOAL,
        "tool_chain": ["pip"],
        "actions_taken": ["pip install numpy==1.24.0"],
        "error_trace": "ModuleNotFoundError: No module named 'distutils'",
        "error_class": "dependency_error",
        "preconditions": ["python=3.12.1", "os=linux"],
        "resolution": "use numpy>=1.26, the first release that supports python 3.12",
        "tags": ["python"],
    },
    {
        "goal": "run the database migrations in the staging container",
        "tool_chain": ["docker", "alembic"],
        "actions_taken": ["docker compose run api alembic upgrade head"],
        "error_trace": "sqlalchemy.exc.OperationalError: could not connect to server: Connection refused",
        "error_class": "network_error",
        "preconditions": {"postgres": "15"},
        "resolution": "wait for the db service's healthcheck before migrating",
    },
]


class Process:
    """A child process whose stdout lines are read by a thread."""

    def __init__(self, name, args, env=None, log=None):
        self.name = name
        self.lines = queue.Queue()
        self.popen = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=log or subprocess.DEVNULL, env=env, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))

    def until_ready(self, timeout=120):
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.1, left))
            except queue.Empty:
                if time.monotonic() > deadline or self.popen.poll() is not None:
                    raise RuntimeError(f"{self.name} did not become ready "
                                       f"(exit {self.popen.poll()}); printed {seen}")
                continue
            if line == "ready":
                return seen
            seen.append(line)

    def stop(self):
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start_stack(tmp):
    config = tmp / "kyro.toml"
    digest = hashlib.sha256(SERVICE_KEY.encode()).hexdigest()
    config.write_text(
        '[[auth.keys]]\nname = "gateway"\ntenant = "gateway"\n'
        'scopes = ["read", "write", "service", "admin"]\n'
        f'sha256 = "{digest}"\n')
    engine = Process("kyro-server", [
        SERVER_BIN, "--config", str(config), "--data-dir", str(tmp / "engine"),
        "--listen", "text=127.0.0.1:0", "--listen", "image=127.0.0.1:0",
        "--http-listen", "127.0.0.1:0"], env={**os.environ, "RUST_LOG": "warn"})
    addresses = {}
    for line in engine.until_ready():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "listening:" and parts[2] == "grpc":
            addresses[parts[1]] = parts[3]
    log = open(tmp / "gateway.log", "w")
    gateway = Process("kyro-gateway", [
        GATEWAY_BIN, "--data-dir", str(tmp / "gateway"), "--listen", "127.0.0.1:0",
        "--engine-text", f"http://{addresses['text']}",
        "--engine-image", f"http://{addresses['image']}"],
        env={**os.environ, "KYRO_GATEWAY_SERVICE_KEY": SERVICE_KEY, "RUST_LOG": "info"},
        log=log)
    admin_key = url = None
    for line in gateway.until_ready():
        if line.startswith("admin key (shown once, stored hashed): "):
            admin_key = line.split(": ", 1)[1]
        if line.startswith("listening: http "):
            url = "http://" + line.split()[-1]
    assert admin_key and url, "the gateway printed no admin key or address"
    return engine, gateway, url, admin_key


def rest(url, method, path, key, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method)
    request.add_header("X-API-Key", key)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read().decode()
        return error.code, json.loads(text) if text else None


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    print(f"screenshot: {SHOTS / name}.png")


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def run(url, admin_key):
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        page.set_default_timeout(30_000)
        # A CSP violation or a script error shows as a console error.
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("dialog", lambda d: d.accept())

        # The page and its security headers.
        response = page.goto(url + "/admin")
        headers = response.headers
        check("script-src 'self'" in headers.get("content-security-policy", ""), headers)
        check("frame-ancestors 'none'" in headers["content-security-policy"], headers)
        check(headers.get("x-frame-options") == "DENY", headers)
        check(headers.get("x-content-type-options") == "nosniff", headers)
        expect(page.locator("#view-login")).to_be_visible()
        shot(page, "login")

        # A wrong key is refused.
        page.fill("#login-key", "em_live_" + "0" * 16 + "_" + "0" * 48)
        page.click("#login-form button[type=submit]")
        expect(page.locator("#login-error")).to_contain_text("refused")

        # The admin key signs in; the bootstrap operator is listed.
        page.fill("#login-key", admin_key)
        page.click("#login-form button[type=submit]")
        expect(page.locator("#customers-table")).to_contain_text("operator")
        check(page.evaluate("sessionStorage.getItem('kyro.adminKey')") == admin_key,
              "the key is kept in sessionStorage")
        check(page.context.cookies() == [], "no cookies")

        # Create a customer (FREE: a quota of 100 captures).
        page.fill("#customer-name", "Acme Robotics")
        page.select_option("#customer-tier", "FREE")
        page.click("#customer-form button[type=submit]")
        expect(page.locator("#customer-title")).to_have_text("Acme Robotics")
        customer_id = page.locator("#customer-facts code").inner_text()
        check(customer_id.startswith("cus_"), customer_id)
        expect(page.locator("#quota-text")).to_contain_text("0 of 100 captures")

        # Create a key (read, write): shown once.
        page.click("#key-form button[type=submit]")
        expect(page.locator("#new-key")).to_be_visible()
        api_key = page.locator("#new-key-value").inner_text()
        check(api_key.startswith("em_live_"), api_key)
        key_id = api_key.split("_")[2]
        expect(page.locator(f'#keys-table tr[data-key="{key_id}"]')).to_contain_text("live")
        shot(page, "customer-new-key")

        # Captures with the customer's key over REST change the usage shown.
        for body in EPISODES:
            status, answer = rest(url, "POST", "/api/v1/capture", api_key, body)
            check(status == 201, f"capture: {status} {answer}")
        page.click("text=← Customers")
        row = page.locator(f'#customers-table tr[data-customer="{customer_id}"]')
        expect(row).to_contain_text("2 / 100 (2.0%)")
        expect(row).to_contain_text("active")
        shot(page, "customers")
        row.locator("a").click()
        expect(page.locator("#quota-text")).to_contain_text("2 of 100 captures")
        expect(page.locator("#new-key")).to_be_hidden()

        # Revoke the key on the page: REST refuses it at once.
        page.click(f'button[data-revoke="{key_id}"]')
        expect(page.locator(f'#keys-table tr[data-key="{key_id}"]')).to_contain_text("revoked")
        status, answer = rest(url, "POST", "/api/v1/capture", api_key, EPISODES[0])
        check(status == 401, f"a revoked key captured: {status} {answer}")
        expect(page.locator("#customer-audit-table")).to_contain_text("key.revoke")
        shot(page, "customer")

        # The audit log has every action, with the denied capture.
        page.click("#nav a[data-view=audit]")
        table = page.locator("#audit-table")
        for action in ["customer.create", "key.create", "key.revoke", "request.denied"]:
            expect(table).to_contain_text(action)
        shot(page, "audit")

        # Engine figures: the captured episodes are points of the text instance.
        page.click("#nav a[data-view=engine]")
        text_card = page.locator('.card[data-instance="text"]')
        expect(text_card).to_contain_text("whole instance")
        expect(text_card).to_contain_text("Query cache hit ratio")
        points = int(text_card.locator('dd[data-stat="Points"]').inner_text().replace(",", ""))
        check(points >= 2, f"text points: {points}")
        expect(page.locator("#health")).to_contain_text("engine_text: ok")
        page.select_option("#engine-customer", customer_id)
        page.click("#engine-form button[type=submit]")
        expect(text_card).to_contain_text("whole instance")
        shot(page, "engine")

        # Search the customer's episodes: ranked, with component scores; not counted.
        page.click("#nav a[data-view=search]")
        page.select_option("#search-customer", customer_id)
        page.fill("#search-goal", "numpy will not install on python 3.12")
        page.fill("#search-state", "python=3.12.1\nos=linux")
        page.click("#search-form button[type=submit]")
        first = page.locator("#search-results > li").first
        expect(first).to_contain_text(GOAL)
        for component in ["similarity", "precondition", "recency", "usage"]:
            value = float(first.locator(f'[data-component="{component}"]').inner_text())
            check(0.0 <= value <= 1.0, f"{component} = {value}")
        check(float(first.locator(f'[data-component="precondition"]').inner_text()) > 0.9,
              "matching preconditions")
        shot(page, "search")
        status, usage = rest(url, "GET", f"/api/v1/customers/{customer_id}/usage", admin_key)
        check(status == 200 and usage["months"][0]["searches"] == 0,
              f"an admin search is not counted: {usage}")
        status, audit = rest(url, "GET", f"/api/v1/audit?customer_id={customer_id}&limit=5", admin_key)
        check(audit["entries"][0]["action"] == "admin.search", audit)

        # Latency: the captures are in the table; the timeline fills while open.
        page.click("#nav a[data-view=latency]")
        expect(page.locator('#latency-table tr[data-route="POST /api/v1/capture"]')).to_be_visible()
        expect(page.locator("#latency-bars svg rect").first).to_be_attached()
        # Traffic for the timeline: a few requests between two polls.
        for _ in range(3):
            rest(url, "GET", "/api/v1/audit?limit=1", admin_key)
            time.sleep(2.5)
        for _ in range(6):
            rest(url, "GET", "/api/v1/audit?limit=1", admin_key)
        # A locator, not wait_for_function: the page's CSP forbids the eval
        # that a string predicate needs.
        expect(page.locator("#latency-timeline polyline")).to_have_count(2, timeout=20_000)
        shot(page, "latency")

        # Suspend the customer on the page.
        page.goto(f"{url}/admin#customer/{customer_id}")
        page.click("#customer-status-button")
        expect(page.locator("#customer-status")).to_have_text("suspended")
        expect(page.locator("#customer-status-button")).to_have_text("Activate customer")

        # A key without the admin scope cannot sign in.
        status, other = rest(url, "POST", "/api/v1/customers", admin_key, {"name": "Globex", "tier": "PRO"})
        status, key = rest(url, "POST", f"/api/v1/customers/{other['customer_id']}/keys",
                           admin_key, {"scopes": ["read", "write"]})
        page.click("#sign-out")
        expect(page.locator("#view-login")).to_be_visible()
        check(page.evaluate("sessionStorage.getItem('kyro.adminKey')") is None, "signed out")
        page.fill("#login-key", key["api_key"])
        page.click("#login-form button[type=submit]")
        expect(page.locator("#login-error")).to_contain_text("no admin scope")
        expect(page.locator("#nav")).to_be_hidden()

        # The only console errors are the refused sign-ins' 401/403 responses.
        unexpected = [m for m in problems if "401" not in m and "403" not in m]
        check(not unexpected, f"console errors: {unexpected}")
        browser.close()


def main():
    for binary in (SERVER_BIN, GATEWAY_BIN, CHROMIUM):
        if not os.access(binary, os.X_OK):
            sys.exit(f"not found: {binary} (see scripts/test-browser.sh)")
    tmp = Path(tempfile.mkdtemp(prefix="kyro-admin-browser-"))
    engine = gateway = None
    ok = False
    try:
        engine, gateway, url, admin_key = start_stack(tmp)
        run(url, admin_key)
        ok = True
        print("admin page browser test: ok")
    finally:
        for process in (gateway, engine):
            if process:
                process.stop()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp} (gateway.log has the gateway's logs)", file=sys.stderr)


if __name__ == "__main__":
    main()
