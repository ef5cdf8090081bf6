#!/usr/bin/python3
"""The dashboard screenshot in docs/ (docs/images/dashboard.png).

Serves examples/migration/prove.toml (the legacy Flask app with its Quart
port of two routes as a shadow, the Quart API at /v2, static files, the
billing proxy; the dashboard at /_trestle), sends a mix of traffic for
--seconds (Flask pages and JSON, Flask's async view, the Quart API, the
shadowed routes, static files) from a few threads, and has headless
Chromium (Debian's chromium + chromium-driver, python3-selenium) take the
page's picture.

Usage: bench/dashboard_screenshot.py [--seconds 40] [--out docs/images/dashboard.png]
"""
import argparse
import os
import random
import sys
import threading
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from proto import ROOT, free_port, wait_port  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "images", "dashboard.png"))
    ap.add_argument("--trestle", default=os.path.join(ROOT, "build", "trestle"))
    opts = ap.parse_args()
    import subprocess
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    port, billing = free_port(), free_port()
    env = dict(os.environ, BILLING_PORT=str(billing))
    proc = subprocess.Popen([opts.trestle, "--config", "examples/migration/prove.toml", "--bind", "127.0.0.1:%d" % port,
                             "/billing=proxy:http://127.0.0.1:%d" % billing],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        base = "http://127.0.0.1:%d" % port
        paths = ["/", "/health", "/summary/ada", "/summary/alan", "/summary/grace", "/v2/items", "/static/style.css",
                 "/audit", "/billing/health"]
        stop = threading.Event()

        def traffic(seed):
            rnd = random.Random(seed)
            s = requests.Session()
            s.post(base + "/login", data={"username": "ada", "password": "lovelace"}, timeout=10)
            while not stop.is_set():
                path = "/report" if rnd.random() < 0.1 else rnd.choice(paths)
                s.get(base + path, timeout=10)
                time.sleep(rnd.random() * 0.01)
        threads = [threading.Thread(target=traffic, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        o = webdriver.ChromeOptions()
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1500"):
            o.add_argument(a)
        o.binary_location = "/usr/bin/chromium"
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
        try:
            driver.get(base + "/_trestle")
            time.sleep(opts.seconds)   # the charts fill as traffic flows: the picture is taken after a while
            os.makedirs(os.path.dirname(opts.out), exist_ok=True)
            driver.save_screenshot(opts.out)
            print("wrote", opts.out)
        finally:
            driver.quit()
            stop.set()
            for t in threads:
                t.join()
    finally:
        proc.terminate()
        proc.wait(20)


if __name__ == "__main__":
    main()
