#!/usr/bin/python3
"""How long the web UI's run page takes to show a wide run, in Debian's chromium.

    /usr/bin/python3 bench/ui_page.py [--partitions 100000] [--loads 5] [-o bench/results]

Starts batchd (build/batchd, build/batchctl), runs one DAG with PARTITIONS `true` partitions
and a gather task, and loads /ui/runs/RUN: LOADS times while the run executes (counts from
the engine, instances from the store) and LOADS times after it ended (counts from one
aggregate query, then kept). One more load right after the trigger ("creating") meets the
engine inserting the run's instances. For each load it records when the page had drawn its
data (body[data-ready-ms], ms since navigation start, set by app.js) and, from the
browser's resource timings, how long the page's status request took. Writes ui_page.csv:
phase, partitions, load, ready_ms, status_ms.
"""

import argparse
import csv
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ui"))
import browser_test  # noqa: E402  (the Daemon helper and the browser settings)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--partitions", type=int, default=100000)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("-o", "--out", default=os.path.join(ROOT, "bench", "results"))
    args = parser.parse_args()
    browser_test.ARGS = argparse.Namespace(batchd=os.path.join(ROOT, "build", "batchd"),
                                           batchctl=os.path.join(ROOT, "build", "batchctl"), screenshots=None)
    root = tempfile.mkdtemp(prefix="batchd-ui-bench-")
    daemon = browser_test.Daemon(root)
    browser = browser_test.new_browser()
    rows = []
    try:
        dag = os.path.join(root, "wide.yaml")
        with open(dag, "w") as f:
            f.write("dag: ui_bench\ntasks:\n  - id: fan\n    partitions:\n      range: [1, %d]\n"
                    "    command: \"true\"\n  - id: gather\n    depends_on: [fan]\n    command: \"true\"\n"
                    % (args.partitions + 1))
        daemon.ctl("submit", dag)
        run = daemon.ctl_json("trigger", "ui_bench")["run_id"]

        def load(phase, n):
            browser.get(daemon.url("/ui/runs/" + run))
            WebDriverWait(browser, 60).until(
                lambda drv: drv.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
            ready = float(browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready-ms"))
            status = browser.execute_script(
                "return performance.getEntriesByType('resource').filter(e => e.name.includes('/runs/') &&"
                " e.name.includes('history=true')).map(e => e.duration)[0] || null;")
            rows.append((phase, args.partitions, n, round(ready), round(status or 0, 1)))
            print("%-8s load %d: ready %.0f ms, status request %.1f ms" % (phase, n, ready, status or 0))

        # While the run's instances are being created the engine is busy (docs/performance.md,
        # "Still open"); once it executes, the page costs a page.
        load("creating", 1)
        time.sleep(10)
        for n in range(1, args.loads + 1):
            load("running", n)
            time.sleep(1)

        def ended():
            return daemon.ctl_json("status", run, "--limit", "1")["state"] in ("success", "failed")

        browser_test.wait_for(ended, 3600, "the run to end")
        load("ended", 0)  # the first load after the end also fills the counts kept for ended runs
        for n in range(1, args.loads + 1):
            load("ended", n)
    finally:
        browser.quit()
        daemon.stop()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "ui_page.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["phase", "partitions", "load", "ready_ms", "status_ms"])
        w.writerows(rows)


if __name__ == "__main__":
    main()
