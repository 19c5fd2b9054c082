#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The operator console in a real headless Chromium (Debian's chromium and
chromium-driver, driven by python3-selenium): sign in, watch a running
campaign's counts change, pause it as an operator, create a campaign with
the form, see that a viewer has no pause button and that the API refuses the
viewer's pause, and check that device-reported strings and an image name
holding "<script>" are shown as text. Screenshots go to OUT_DIR.

usage: console_browser.py BASE_URL OPERATOR_TOKEN VIEWER_TOKEN CAMPAIGN OUT_DIR XSS_TEXT XSS_IMAGE
(XSS_TEXT: the model, version, error detail and a tag of device xss-1)
"""
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

BASE, OPERATOR, VIEWER, CAMPAIGN, OUT, XSS_TEXT, XSS_IMAGE = sys.argv[1:8]
passed = failed = 0


def check(name, ok, detail=''):
    global passed, failed
    if ok:
        passed += 1
        print(f'ok   {name}')
    else:
        failed += 1
        print(f'FAIL {name} {detail}')


def shot(driver, name):
    path = os.path.join(OUT, name + '.png')
    driver.save_screenshot(path)
    print(f'     screenshot {path}')


def wait(driver, seconds, fn, what):
    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.2).until(lambda d: fn(d))
    except TimeoutException:
        shot(driver, 'timeout-' + what.replace(' ', '-'))
        raise AssertionError(f'timed out waiting for {what}')


def click(driver, by, sel):
    """Click an element of a view that re-renders while it polls: an element
    found just before a re-render is stale, and the click is tried again on
    the new one (a stale element was not clicked)."""
    def attempt(d):
        try:
            d.find_element(by, sel).click()
            return True
        except (StaleElementReferenceException, NoSuchElementException):
            return False
    wait(driver, 15, attempt, 'click ' + sel)


def text_of(driver, css):
    # one script call: the views re-render while they poll (no stale elements)
    return driver.execute_script(
        'const e = document.querySelector(arguments[0]); return e ? e.innerText.trim() : null', css)


def texts_of(driver, css):
    return driver.execute_script(
        'return [...document.querySelectorAll(arguments[0])].map((e) => e.innerText.trim())', css)


def start_campaign():
    """The operator's campaign starts once the browser is up (Chromium may
    take a while to start on a busy machine): its counts move while we look."""
    req = urllib.request.Request(f'{BASE}/api/v1/campaigns/{CAMPAIGN}/start', method='POST',
                                 headers={'Authorization': 'Bearer ' + OPERATOR})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)['state']


def get_json(path):
    req = urllib.request.Request(BASE + path, headers={'Authorization': 'Bearer ' + OPERATOR})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def campaign_state():
    return get_json(f'/api/v1/campaigns/{CAMPAIGN}')['state']


def viewer_action(driver, action):
    """POST a campaign action from the page with the signed-in token: [status, error code]."""
    return driver.execute_async_script('''
        const done = arguments[arguments.length - 1];
        fetch(`/api/v1/campaigns/${arguments[0]}/${arguments[1]}`, {method: 'POST',
              headers: {Authorization: 'Bearer ' + sessionStorage.getItem('fleetota.token')}})
          .then(async (r) => done([r.status, ((await r.json()).error || {}).code]))
          .catch((e) => done(['error', String(e)]));''', CAMPAIGN, action)


def sign_in(driver, token, role):
    driver.get(BASE + '/console/')
    wait(driver, 15, lambda d: d.find_elements(By.ID, 'token'), 'the sign-in form')
    driver.find_element(By.ID, 'token').send_keys(token)
    driver.find_element(By.ID, 'signin-submit').click()
    wait(driver, 15, lambda d: role in (text_of(d, '#who') or ''), f'signed in as {role}')
    # the token is never in a URL
    return token not in driver.current_url


def totals(driver):
    ids = ['total-confirmed', 'total-failed', 'total-timed-out', 'total-in-flight', 'total-pending']
    vals = [text_of(driver, '#' + i) for i in ids]
    return None if None in vals else tuple(int(v) for v in vals)


def csp_violations(driver):
    return [e for e in driver.get_log('browser')
            if 'Content Security Policy' in e.get('message', '') or 'Refused to' in e.get('message', '')]


def main():
    os.makedirs(OUT, exist_ok=True)
    profile = tempfile.mkdtemp(prefix='fleetota-chromium-')  # removed at the end
    opts = webdriver.ChromeOptions()
    opts.binary_location = '/usr/bin/chromium'
    for a in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
              '--window-size=1280,800', '--force-device-scale-factor=1', '--no-first-run',
              '--disable-extensions', '--disable-background-networking', '--disable-component-update',
              '--user-data-dir=' + profile):
        opts.add_argument(a)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    driver = webdriver.Chrome(service=Service('/usr/bin/chromedriver'), options=opts)
    driver.set_page_load_timeout(20)
    try:
        # 1. sign in (operator)
        check('1 sign in as operator, token not in the URL', sign_in(driver, OPERATOR, 'operator'))
        stored = driver.execute_script('return sessionStorage.getItem("fleetota.token")')
        check('1 token kept in sessionStorage only', stored == OPERATOR and
              driver.execute_script('return localStorage.length') == 0 and
              driver.execute_script('return document.cookie') == '')

        # 2. the running campaign's counts change
        driver.get(f'{BASE}/console/#/campaigns/{CAMPAIGN}')
        wait(driver, 15, lambda d: (text_of(d, '#campaign-state') or '') == 'draft', 'the draft campaign')
        check('2 campaign started', start_campaign() == 'running')
        first = wait(driver, 20, lambda d: totals(d), 'campaign totals')
        shot(driver, '2-campaign-start')
        t0 = time.monotonic()
        changed = wait(driver, 40, lambda d: (totals(d) != first) and totals(d), 'counts to change')
        check('2 live counts change without a reload', changed != first,
              f'{first} -> {changed} after {time.monotonic() - t0:.1f} s')
        print(f'     counts {first} -> {changed} after {time.monotonic() - t0:.1f} s')
        # the stage cards draw bars, not numbers alone
        segs = driver.find_elements(By.CSS_SELECTOR, '#stages .bar .seg')
        check('2 progress drawn as bars', len(segs) > 0)
        wait(driver, 20, lambda d: sum(totals(d)[:2]) >= 3, 'a few confirmed devices')
        shot(driver, 'campaign-live')

        # 3. pause it as an operator
        click(driver, By.ID, 'act-pause')
        wait(driver, 15, lambda d: (text_of(d, '#campaign-state') or '') == 'paused', 'state paused')
        wait(driver, 15, lambda d: d.find_elements(By.ID, 'act-resume'), 'a resume button')
        wait(driver, 15, lambda d: 'paused' in (text_of(d, '#timeline') or ''), 'the pause in the timeline')
        check('3 operator paused the campaign', True)
        shot(driver, '3-paused-by-operator')

        # the operator creates a campaign with the form: stages, thresholds,
        # rate, device timeout, a daily window, four-eyes approval (not started)
        driver.get(f'{BASE}/console/#/campaigns')
        wait(driver, 15, lambda d: d.find_elements(By.ID, 'new-campaign'), 'the New campaign button')
        click(driver, By.ID, 'new-campaign')
        wait(driver, 15, lambda d: d.find_elements(By.CSS_SELECTOR, '#f-artifact option'), 'the artifact choice')
        driver.find_element(By.ID, 'f-id').send_keys('form-1')
        stages = [{'count': 1, 'failure_ratio': 0.5, 'soak_seconds': 30},
                  {'percent': 100, 'success_ratio': 0.9, 'failure_ratio': 0.2, 'max_in_flight': 5}]
        driver.find_element(By.ID, 'f-stages').clear()
        driver.find_element(By.ID, 'f-stages').send_keys(json.dumps(stages))
        for i, v in (('f-rate', '30'), ('f-timeout', '300')):
            driver.find_element(By.ID, i).clear()
            driver.find_element(By.ID, i).send_keys(v)
        for i in ('f-window', 'f-approval', 'f-start'):  # f-start is checked by default: unchecked here
            driver.find_element(By.ID, i).click()
        shot(driver, '3-create-form')
        driver.find_element(By.ID, 'create-submit').click()
        wait(driver, 15, lambda d: (text_of(d, '#campaign-state') or '') == 'draft'
             and d.current_url.endswith('#/campaigns/form-1'), 'the created campaign')
        c = get_json('/api/v1/campaigns/form-1')
        # what the form sent comes back (the engine fills in the stage keys left out)
        got = {'artifact': c['artifact'], 'rate': c['rate_per_minute'], 'timeout': c['device_timeout_seconds'],
               'approval': c['requires_approval'], 'windows': c['windows'],
               'stages': [{k: s.get(k) for k in sent} for s, sent in zip(c['stages'], stages)]}
        want = {'artifact': 'fw-1.1.0', 'rate': 30, 'timeout': 300, 'approval': True,
                'windows': [{'days': [0, 1, 2, 3, 4, 5, 6], 'start_minute': 120, 'duration_minutes': 240}],
                'stages': stages}
        check('3 the create form made the campaign it shows', got == want, f'{got}')

        # 4. a viewer cannot pause (no button that would answer 403)
        click(driver, By.ID, 'signout')
        wait(driver, 10, lambda d: d.find_elements(By.ID, 'token'), 'signed out')
        check('4 sign-out forgets the token', driver.execute_script(
            'return sessionStorage.getItem("fleetota.token")') is None)
        sign_in(driver, VIEWER, 'viewer')
        driver.get(f'{BASE}/console/#/campaigns/{CAMPAIGN}')
        wait(driver, 15, lambda d: (text_of(d, '#campaign-state') or '') == 'paused', 'viewer sees paused')
        buttons = texts_of(driver, '#actions button')
        check('4 viewer sees no action button', buttons == [], f'{buttons}')
        # and the API refuses the viewer's own token (the shell checks the audit after)
        for action in ('pause', 'resume'):
            got = viewer_action(driver, action)
            check(f'4 the viewer\'s {action} answers 403 forbidden', got == [403, 'forbidden'], f'{got}')
        check('4 still paused after the viewer\'s tries', campaign_state() == 'paused')
        driver.get(f'{BASE}/console/#/campaigns')
        wait(driver, 15, lambda d: d.find_elements(By.CSS_SELECTOR, 'table.campaigns tbody tr'), 'campaign list')
        check('4 viewer has no "New campaign"', driver.find_elements(By.ID, 'new-campaign') == [])
        driver.get(f'{BASE}/console/#/artifacts')
        wait(driver, 15, lambda d: d.find_elements(By.CSS_SELECTOR, 'table.artifacts tbody tr[data-artifact]'), 'artifacts')
        check('4 viewer has no campaign button on artifacts',
              driver.find_elements(By.CSS_SELECTOR, 'table.artifacts a.button') == [])
        shot(driver, '4-viewer')

        # 5. device-supplied strings stay text
        names = texts_of(driver, '.image-name')
        check('5 image name with <script> shown as text', XSS_IMAGE in names, f'{names}')
        driver.get(f'{BASE}/console/#/fleet')
        q = wait(driver, 15, lambda d: d.find_elements(By.ID, 'fleet-q'), 'fleet search')[0]
        q.send_keys('xss')
        click(driver, By.CSS_SELECTOR, '#fleet-form button')
        wait(driver, 15, lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-device] td'), 'search result')
        cells = texts_of(driver, 'tr[data-device] td')
        check('5 device id found by search', cells[:1] == ['xss-1'], f'{cells}')
        check('5 reported model and version with <script> shown as text',
              cells[1:3] == [XSS_TEXT, XSS_TEXT], f'{cells}')
        legend = wait(driver, 15, lambda d: texts_of(d, '#fleet-summary .model h3'), 'fleet summary')
        check('5 the fleet summary shows the model as text', any(XSS_TEXT in t for t in legend), f'{legend}')
        shot(driver, '5-fleet-xss-as-text')
        click(driver, By.CSS_SELECTOR, 'a.device-id')
        wait(driver, 15, lambda d: d.find_elements(By.CSS_SELECTOR, 'dl.kv .detail'), 'device detail')
        detail = text_of(driver, 'dl.kv .detail')
        check('5 reported error detail with <script> shown as text', detail == XSS_TEXT, f'{detail!r}')
        tags = texts_of(driver, 'dl.kv .tag')
        check('5 a tag with <script> shown as text', sorted(tags) == sorted(['lab', XSS_TEXT]), f'{tags}')
        check('5 no <img> was made from data', driver.execute_script('return document.images.length') == 0)
        check('5 no script element was made from data',
              driver.execute_script('return document.querySelectorAll("main script, #main script").length') == 0)
        check('5 the injected code never ran', driver.execute_script('return window.__xss === undefined'))
        shot(driver, '5-device-xss-as-text')
        driver.get(f'{BASE}/console/#/audit')
        wait(driver, 15, lambda d: d.find_elements(By.CSS_SELECTOR, 'table.audit tbody tr'), 'audit')
        shot(driver, 'audit')

        # 6. the page works under its CSP (nothing refused) - the header itself is checked by curl
        v = csp_violations(driver)
        check('6 no CSP violation while using the console', v == [], json.dumps(v)[:400])
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    print(f'{passed} passed, {failed} failed')
    return 0 if failed == 0 else 1


if __name__ == '__main__':
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f'FAIL {e}')
        print(f'{passed} passed, {failed + 1} failed')
        sys.exit(1)
