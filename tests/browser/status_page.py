"""Drives the node's status page in headless Chromium (selenium + Debian's chromedriver).

Run by tests/tests/status_page_works_in_headless_chromium.rs, which starts a local network,
submits one period's evidence and then runs:

    python status_page.py URL OUT_DIR DIGEST...

URL is a member's API, OUT_DIR receives the screenshots, DIGEST... are the evidence digests the
member acknowledged (they must appear on the page once the verdicts land). Exits non-zero with
the reason on the first expectation that does not hold.
"""

import copy
import json
import shutil
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def wait_until(what, predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    fail(f"timed out after {timeout} s waiting for {what}")


def browser(without_webcrypto=False):
    chromedriver = shutil.which("chromedriver")
    chromium = shutil.which("chromium")
    if not chromedriver or not chromium:
        fail("chromium and chromedriver must be installed (scripts/test.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1500"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    if without_webcrypto:
        # As on a page served over plain HTTP from another host: no crypto.subtle at all.
        driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument",
            {"source": "Object.defineProperty(Crypto.prototype, 'subtle', {get() { return undefined; }, configurable: true});"},
        )
    return driver


def text(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def verify(driver, statement_json):
    """Pastes a statement into the verify panel, presses Verify, returns (class, text)."""
    box = driver.find_element(By.ID, "statement-input")
    box.clear()
    driver.execute_script("arguments[0].value = arguments[1];", box, statement_json)
    driver.execute_script("document.getElementById('verify-result').textContent = '';")
    driver.find_element(By.ID, "verify-button").click()
    result = driver.find_element(By.ID, "verify-result")
    wait_until("a verification result", lambda: result.text.strip(), 10)
    return result.get_attribute("class"), result.text


def with_scalar_plus_order(statement):
    """The statement with its signature's S replaced by S + L: the same point equation, a
    non-canonical scalar that every verifier must refuse (RFC 8032 section 5.1.7)."""
    order = (1 << 252) + 27742317777372353535851937790883648493
    sig = bytes.fromhex(statement["signature"])
    s = int.from_bytes(sig[32:], "little") + order
    edited = copy.deepcopy(statement)
    edited["signature"] = (sig[:32] + s.to_bytes(32, "little")).hex()
    return edited


def check_verify_panel(driver, genuine, tampered, verifier):
    """The verify panel: `genuine` is valid (checked with `verifier`), each tampered statement
    is refused with its reason."""
    cls, msg = verify(driver, json.dumps(genuine))
    if "ok" not in cls.split() or f"checked with {verifier}" not in msg:
        fail(f"a genuine statement did not verify with {verifier}: {msg}")
    for statement, reason in tampered:
        cls, msg = verify(driver, json.dumps(statement))
        if "bad" not in cls.split() or reason not in msg:
            fail(f"{verifier}: expected a red result with {reason!r}, got {cls!r}: {msg}")


def fallback_verifier(url, genuine, tampered):
    """Without WebCrypto the page verifies with the vendored TweetNaCl and js-sha256, and
    refuses exactly what WebCrypto refuses."""
    driver = browser(without_webcrypto=True)
    try:
        driver.get(url + "/")
        if driver.execute_script("return crypto.subtle === undefined") is not True:
            fail("the test could not take WebCrypto away from the page")
        wait_until("the trust bundle on the page", lambda: '"group_key"' in driver.find_element(By.ID, "bundle-input").get_attribute("value"), 20)
        check_verify_panel(driver, genuine, tampered, "TweetNaCl")
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        if errors:
            fail(f"the page without WebCrypto logged errors: {errors}")
    finally:
        driver.quit()


def main():
    url, out_dir, digests = sys.argv[1], sys.argv[2], sys.argv[3:]
    driver = browser()
    try:
        driver.get(url + "/")
        # Status: the node is ready (dealt keys, every member connected), no verdict yet.
        wait_until("the ready badge", lambda: text(driver, "ready") == "Ready", 20)
        if "lab" in text(driver, "verdicts") and "No co-signed" not in text(driver, "verdicts"):
            fail("verdicts were shown before any period closed")
        first_close = text(driver, "next-close")
        driver.save_screenshot(f"{out_dir}/page-before-verdicts.png")

        # A verdict lands: the table fills with every lab's verdict and evidence digests, and
        # the status moves on, without reloading the page.
        rows = wait_until(
            "the verdicts of both labs on the page",
            lambda: len(driver.find_elements(By.CSS_SELECTOR, "#verdicts tr[data-lab]")) == 2
            and driver.find_elements(By.CSS_SELECTOR, "#verdicts tr[data-lab]"),
            60,
        )
        table = text(driver, "verdicts")
        for d in digests:
            if d not in table:
                fail(f"evidence digest {d} is not on the page:\n{table}")
        if "violation" not in table or "compliant" not in table:
            fail(f"expected one compliant and one violation verdict:\n{table}")
        if text(driver, "next-close") == first_close:
            fail("the status did not move on when the period closed")
        wait_until("the log's cosigners", lambda: text(driver, "log-cosigners") not in ("…", "no witness yet"), 20)
        if int(text(driver, "log-size")) < 2:
            fail("the transparency log does not show the statements")

        # A genuine statement verifies (the row's Verify button pastes it).
        rows[0].find_element(By.TAG_NAME, "button").click()
        result = driver.find_element(By.ID, "verify-result")
        wait_until("the genuine statement's result", lambda: result.text.strip(), 10)
        if "ok" not in result.get_attribute("class").split() or not result.text.startswith("Valid"):
            fail(f"a genuine statement did not verify: {result.text}")
        driver.execute_script("document.getElementById('verify-panel').scrollIntoView()")
        driver.save_screenshot(f"{out_dir}/page-verify-genuine.png")
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(f"{out_dir}/page-status.png")

        # Genuine statements straight from the API verify too.
        with urllib.request.urlopen(url + "/v1/statements") as r:
            statements = json.load(r)
        violation = next(s for s in statements if s["verdict_kind"] == "violation")
        cls, msg = verify(driver, json.dumps(violation))
        if "ok" not in cls.split():
            fail(f"a genuine statement from the API did not verify: {msg}")

        # Tampered statements are refused, each with its reason.
        tampered = []
        edited = copy.deepcopy(violation)
        edited["verdict_kind"] = "compliant"
        edited["verdict"] = "Compliant"
        tampered.append((edited, "the verdict_kind field does not match the signed statement"))
        flipped = copy.deepcopy(violation)
        sig = bytearray.fromhex(flipped["signature"])
        sig[5] ^= 0x01
        flipped["signature"] = sig.hex()
        tampered.append((flipped, "bad signature: the group did not sign this message"))
        moved = copy.deepcopy(violation)
        moved["period"] = violation["period"] + 1
        tampered.append((moved, "bad checkpoint: origin names another network or period"))
        other_lab = copy.deepcopy(violation)
        other_lab["lab"] = "lab-999"
        tampered.append((other_lab, "the lab field does not match the signed statement"))
        tampered.append((with_scalar_plus_order(violation), "bad signature: the group did not sign this message"))
        check_verify_panel(driver, violation, tampered, "WebCrypto")
        # The screenshot shows the first tampering (the edited verdict).
        verify(driver, json.dumps(tampered[0][0]))
        driver.execute_script("document.getElementById('verify-panel').scrollIntoView()")
        driver.save_screenshot(f"{out_dir}/page-verify-tampered.png")

        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        if errors:
            fail(f"the page logged errors: {errors}")
    finally:
        driver.quit()
    fallback_verifier(url, violation, tampered)
    print("OK: status, verdicts, log and the verify panel behave, with WebCrypto and without")


if __name__ == "__main__":
    main()
