#!/usr/bin/env python3
"""Drives reachd's web console in a real headless browser (Debian's chromium
through chromedriver, with selenium; no browser is downloaded).

ConsoleTests starts a daemon with a seeded database, a local provider, one
dead delivery (campaign `dl`) and two tokens, then runs this script; after it
the Swift test checks the outcomes in PostgreSQL and at the provider. The
script itself checks what only a browser can see, and saves a screenshot of
every step into --shots (the test's temporary folder; docs/console for the
README's pictures).

Steps: sign in; start a campaign from the form (its name is markup, and it
must render as text), preview its segment, watch it, pause it, resume it,
watch it reach 100 %; create a trigger rule and disable it; replay the dead
letter; look at channels and health; sign in with the read token and find
every write control hidden and a write refused (403).

Environment: CONSOLE_WRITE_TOKEN, CONSOLE_READ_TOKEN (never on the command line).
Prints `console_test: all steps passed` at the end; exits 1 on the first failure.
"""
import argparse
import os
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

XSS_NAME = "<img src=x onerror=alert(1)>"


class Failure(Exception):
    pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="http://host:port of reachd")
    parser.add_argument("--shots", required=True, help="folder for the screenshots")
    parser.add_argument("--campaign", default="console-e2e", help="id of the campaign started from the form")
    parser.add_argument("--users", type=int, default=300, help="users u00001… in the campaign's segment")
    parser.add_argument("--dead-campaign", default="dl", help="campaign whose dead letter is replayed")
    args = parser.parse_args()
    write_token = os.environ["CONSOLE_WRITE_TOKEN"]
    read_token = os.environ["CONSOLE_READ_TOKEN"]
    os.makedirs(args.shots, exist_ok=True)

    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1400,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    step = [0]

    def shot(name):
        step[0] += 1
        driver.save_screenshot(os.path.join(args.shots, "%02d-%s.png" % (step[0], name)))

    def wait(what, condition, timeout=30.0):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                value = condition()
                if value:
                    return value
            except (StaleElementReferenceException, NoSuchElementException, Failure) as e:
                last = e
            time.sleep(0.1)
        shot("timeout")
        page = driver.execute_script("return document.getElementById('main').innerText")
        logs = [e["message"] for e in driver.get_log("browser")]
        raise Failure("timed out waiting for %s (%s); page: %s; browser log: %s" % (what, last, page[:1500], logs[-10:]))

    def find(css):
        return driver.find_element(By.CSS_SELECTOR, css)

    def visible(css):
        return [e for e in driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]

    def no_alert():
        try:
            alert = driver.switch_to.alert
        except NoAlertPresentException:
            return
        raise Failure("a JavaScript alert opened: %r" % alert.text)

    def flash_text():
        return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "#flash .msg"))

    def sign_in(token):
        driver.get(args.url + "/console")
        wait("the sign-in form", lambda: find("#login").is_displayed())
        token_input = find("#token")
        token_input.clear()
        token_input.send_keys(token)
        find("#login-button").click()
        wait("the navigation after signing in", lambda: find("#nav").is_displayed())
        if token in driver.current_url:
            raise Failure("the token is in the URL")

    def progress():
        # The page re-renders on every poll, so the element found may be replaced before its text
        # is read: read again rather than fail on a stale reference.
        for _ in range(50):
            try:
                text = find("[data-testid=progress-text]").text
                return int(text.split()[0]) if text.endswith("%") else None
            except (StaleElementReferenceException, NoSuchElementException):
                time.sleep(0.05)
        raise Failure("the progress text kept being replaced for 2.5 s")

    try:
        # 1. Sign in: a wrong token is refused, the right one opens the campaigns page.
        driver.get(args.url + "/console")
        wait("the sign-in form", lambda: find("#login").is_displayed())
        shot("sign-in")
        find("#token").send_keys("not-a-token")
        find("#login-button").click()
        wait("the refusal of a wrong token", lambda: "not valid" in find("#login-error").text)
        sign_in(write_token)
        wait("the campaigns table", lambda: find("[data-testid=campaigns]"))
        if "operator" not in find("#scope").text:
            raise Failure("a write token is not shown as operator: %r" % find("#scope").text)
        if driver.execute_script("return sessionStorage.getItem('reachd.token')") != write_token:
            raise Failure("the token is not kept in sessionStorage")
        if driver.execute_script("return localStorage.length") != 0:
            raise Failure("something was written to localStorage")

        # 2. New campaign: fill the form, preview the segment, start it.
        find("nav a[data-page=new]").click()
        wait("the new-campaign form", lambda: find("input[name=campaign_id]"))
        campaign_id = find("input[name=campaign_id]")
        campaign_id.clear()
        campaign_id.send_keys(args.campaign)
        find("input[name=name]").send_keys(XSS_NAME)
        Select(find("select[name=segment_kind]")).select_by_value("user_ids")
        find("textarea[name=segment]").send_keys(" ".join("u%05d" % i for i in range(1, args.users + 1)))
        for weight in driver.find_elements(By.CSS_SELECTOR, "input[data-channel]"):
            weight.clear()
            weight.send_keys("1" if weight.get_attribute("data-channel") == "sms" else "0")
        body = find("textarea[name=body]")
        body.clear()
        body.send_keys("Hi {{user.name}}, from the console")
        find("button[data-action=preview]").click()
        wait("the segment preview", lambda: find("[data-testid=preview-count]").text == "%d" % args.users)
        shot("new-campaign-preview")
        find("button[data-action=start]").click()
        wait("the campaign's page", lambda: args.campaign in driver.current_url and find("[data-testid=campaign-title]"))
        wait("the campaign to run", lambda: find("[data-testid=campaign-state]").text == "running")
        title = find("[data-testid=campaign-title]").text
        if XSS_NAME not in title:
            raise Failure("the campaign's name is not shown as text: %r" % title)
        if driver.find_elements(By.CSS_SELECTOR, "#page img"):
            raise Failure("the campaign's name became an <img> element")
        shot("campaign-running")

        # 3. Pause it part way; the progress stands still while it is paused; resume it.
        wait("some progress", lambda: (progress() or 0) > 0, timeout=60)
        find("button[data-action=pause]").click()
        wait("the paused state", lambda: find("[data-testid=campaign-state]").text == "paused")
        paused_at = progress()
        if paused_at is None or paused_at >= 100:
            raise Failure("paused at %r %%: the campaign is too fast to be paused part way" % paused_at)
        time.sleep(3)  # what was in flight settles; nothing new starts
        settled = progress()
        time.sleep(3)
        if progress() != settled:
            raise Failure("progress moved while paused: %r → %r" % (settled, progress()))
        shot("campaign-paused")
        find("button[data-action=resume]").click()
        wait("the running state after resume", lambda: find("[data-testid=campaign-state]").text in ("running", "done"))
        wait("100 %", lambda: progress() == 100 and find("[data-testid=campaign-state]").text == "done", timeout=120)
        split = find("[data-testid=channel-split]").text
        if "sms" not in split:
            raise Failure("the per-channel split does not show sms: %r" % split)
        shot("campaign-done")

        # 4. The list shows the markup name as text, with no alert and no <img>.
        find("nav a[data-page=campaigns]").click()
        wait("the campaign in the list", lambda: find("tr[data-campaign='%s'] [data-testid=campaign-name]" % args.campaign).text == XSS_NAME)
        if driver.find_elements(By.CSS_SELECTOR, "[data-testid=campaigns] img"):
            raise Failure("an <img> element is in the campaigns table")
        no_alert()
        shot("campaigns")

        # 5. Triggers: create a rule from the form, then disable it.
        find("nav a[data-page=triggers]").click()
        wait("the new-rule button", lambda: visible("button[data-action=new-trigger]"))
        find("button[data-action=new-trigger]").click()
        find("[data-testid=trigger-form] input[name=id]").send_keys("console-rule")
        find("[data-testid=trigger-form] input[name=event]").send_keys("order.paid")
        for weight in driver.find_elements(By.CSS_SELECTOR, "[data-testid=trigger-form] input[data-channel]"):
            weight.clear()
            weight.send_keys("1" if weight.get_attribute("data-channel") == "sms" else "0")
        find("[data-testid=trigger-form] textarea[name=body]").send_keys("Order {{event.order_id}} is paid")
        find("button[data-action=save-trigger]").click()
        wait("the new rule in the list", lambda: "enabled" in find("tr[data-trigger=console-rule]").text)
        find("tr[data-trigger=console-rule] button[data-action=toggle]").click()
        wait("the rule disabled", lambda: "disabled" in find("tr[data-trigger=console-rule]").text)
        shot("triggers")

        # 6. Dead letters: filter by campaign, select the one dead letter, replay it.
        find("nav a[data-page=dead-letters]").click()
        wait("the dead-letter filter", lambda: find("input[name=campaign]"))
        find("input[name=campaign]").send_keys(args.dead_campaign)
        find("form.filters button[type=submit]").click()
        wait("the dead letter", lambda: len(driver.find_elements(By.CSS_SELECTOR, "tr[data-dead-letter]")) == 1)
        shot("dead-letters")
        find("tr[data-dead-letter] input[type=checkbox]").click()
        find("button[data-action=replay-selected]").click()
        wait("the replay's answer", lambda: "Replayed 1 dead letter" in flash_text())
        wait("replayed_at in the row", lambda: find("tr[data-dead-letter]").text.split()[-1] != "—")
        shot("dead-letter-replayed")

        # 7. Channels and health.
        find("nav a[data-page=channels]").click()
        wait("the channels", lambda: "breaker" in find("[data-testid=channels]").text.lower()
             and "closed" in find("tr[data-channel=sms]").text and "live" in find("tr[data-channel=sms]").text)
        shot("channels")
        find("nav a[data-page=health]").click()
        wait("the health checks", lambda: len(driver.find_elements(By.CSS_SELECTOR, "tr[data-check]")) >= 3
             and "ready" in find("#page").text)
        shot("health")

        # 8. A read token: every write control is hidden, and a write is refused.
        find("#logout").click()
        wait("the sign-in form after logging out", lambda: find("#login").is_displayed())
        if driver.execute_script("return sessionStorage.getItem('reachd.token')") is not None:
            raise Failure("the token stayed in sessionStorage after logging out")
        sign_in(read_token)
        if "read only" not in find("#scope").text:
            raise Failure("a read token is not shown as read only: %r" % find("#scope").text)
        if visible("nav a[data-page=new]"):
            raise Failure("the New campaign link is shown to a read token")
        driver.get(args.url + "/console#/campaigns/" + args.campaign)
        wait("the campaign's page for the viewer", lambda: find("[data-testid=campaign-state]").text == "done")
        if visible("button[data-action]"):
            raise Failure("write buttons are shown to a read token: %r" % [b.text for b in visible("button[data-action]")])
        status = driver.execute_async_script("""
            const done = arguments[arguments.length - 1];
            fetch('/v1/campaigns/' + encodeURIComponent(arguments[0]) + '/pause', {method: 'POST',
                  headers: {Authorization: 'Bearer ' + sessionStorage.getItem('reachd.token')}}).then(r => done(r.status));
        """, args.campaign)
        if status != 403:
            raise Failure("a write with the read token answered %r, not 403" % status)
        shot("read-only")
        find("nav a[data-page=dead-letters]").click()
        wait("the dead letters for the viewer", lambda: find("[data-testid=dead-letters]"))
        if visible("button[data-action=replay-selected]") or visible("tr[data-dead-letter] input[type=checkbox]"):
            raise Failure("replay controls are shown to a read token")

        # The browser's console saw no CSP violation and no script error.
        problems = [e["message"] for e in driver.get_log("browser")
                    if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]]  # the 401/403s this test asks for
        if problems:
            raise Failure("the browser logged errors: %s" % problems)
        no_alert()
    except Failure as e:
        print("console_test: FAIL: %s" % e)
        return 1
    finally:
        driver.quit()
    print("console_test: screenshots in %s" % args.shots)
    print("console_test: all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
