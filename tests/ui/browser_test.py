#!/usr/bin/python3
"""The web UI in a real browser (docs/ui.md): Debian's chromium, driven by chromedriver
through python3-selenium, against a real batchd serving the example DAGs and a scripted
scenario, set up with the real batchctl.

    /usr/bin/python3 tests/ui/browser_test.py --batchd build/batchd --batchctl build/batchctl \
        [--screenshots docs/images/ui]

The scenario: nightly_billing (an example DAG) runs to success; ui_demo has a partition that
fails once and is retried, one that fails after its last retry (a dead letter) and a task
still running; ui_wide has 10,000 partitions. Every page is loaded and checked: the DAG list
shows every example DAG, the grid and the Gantt the right states, the graph one node per
task and an edge per dependency, the dead letters the failed partition, the log page its
output; the browser console stays free of errors, and the 10,000-partition run's page is
ready within 300 ms of navigation. Then a second daemon with ui.token: the page asks for the
token, refuses a wrong one and shows the DAGs with the right one.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ARGS = None
SOURCE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGE_LIMIT_MS = 300
TOKEN = "browser-test-token-0123456789"

DEMO_DAG = """dag: ui_demo
description: "a retried partition, a dead letter and a task still running <img src=x onerror=alert(1)>"
params:
  note: "</script><script>alert(2)</script>"
tasks:
  - id: prepare
    command: "echo preparing the demo"
  - id: shard
    depends_on: [prepare]
    partitions:
      values: [alpha, beta, gamma]
    retry:
      retries: 1
      delay: 100ms
    command: |
      case {{ partition }} in
        beta) if [ ! -e @TMP@/beta-failed-once ]; then touch @TMP@/beta-failed-once; echo "beta: first try fails"; exit 3; fi ;;
        gamma) echo "gamma cannot reach the warehouse" >&2; exit 7 ;;
      esac
      echo "shard {{ partition }} done"
  - id: publish
    depends_on: [shard]
    command: "echo publishing"
  - id: slow
    command: "for i in $(seq 1 600); do echo tick $i; sleep 1; done"
  - id: chatty
    command: "seq 1 300000"
"""

WIDE_DAG = """dag: ui_wide
description: ten thousand partitions
tasks:
  - id: fan
    partitions:
      range: [1, 10001]
    command: "true"
  - id: gather
    depends_on: [fan]
    command: "echo gathered"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """batchd serve on a fresh data directory, with the example DAGs and the given config."""

    def __init__(self, root, config_yaml=""):
        self.root = root
        self.data = os.path.join(root, "data")
        self.dags = os.path.join(root, "dags")
        os.makedirs(self.dags, exist_ok=True)
        for name in sorted(os.listdir(os.path.join(SOURCE_DIR, "dags"))):
            if name.endswith((".yaml", ".yml")):
                shutil.copy(os.path.join(SOURCE_DIR, "dags", name), self.dags)
        self.socket = os.path.join(tempfile.mkdtemp(prefix="bdui"), "s")
        self.port = free_port()
        argv = [ARGS.batchd, "serve", "--data-dir", self.data, "--dags-dir", self.dags, "--socket", self.socket,
                "--http", "127.0.0.1:%d" % self.port, "--workers", "4"]
        if config_yaml:
            config = os.path.join(root, "batchd.yaml")
            with open(config, "w") as f:
                f.write(config_yaml)
            argv += ["--config", config]
        self.log = open(os.path.join(root, "batchd.log"), "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.ctl("health", check=False).returncode == 0:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("batchd did not start:\n" + open(os.path.join(root, "batchd.log")).read())

    def ctl(self, *args, check=True):
        r = subprocess.run([ARGS.batchctl, "--socket", self.socket] + list(args), capture_output=True, text=True,
                           timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError("batchctl %s: exit %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def ctl_json(self, *args):
        return json.loads(self.ctl("--json", *args).stdout)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.log.close()
        return code


def wait_for(predicate, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def new_browser():
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu", "--no-first-run", "--disable-extensions", "--disable-background-networking"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


class WebUiBrowserTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="batchd-ui-")
        cls.daemon = Daemon(cls.root)
        d = cls.daemon
        d.ctl("pause", "--all")  # no scheduled fire in the middle of the scenario
        cls.examples = sorted(e["dag"] for e in d.ctl_json("dags"))

        def submit(name, text):
            path = os.path.join(cls.root, name + ".yaml")
            with open(path, "w") as f:
                f.write(text.replace("@TMP@", cls.root))
            d.ctl("submit", path)

        submit("ui_demo", DEMO_DAG)
        submit("ui_wide", WIDE_DAG)
        cls.billing_run = d.ctl_json("trigger", "nightly_billing")["run_id"]
        cls.demo_run = d.ctl_json("trigger", "ui_demo")["run_id"]
        cls.wide_run = d.ctl_json("trigger", "ui_wide")["run_id"]

        def run_state(run):
            return d.ctl_json("status", run, "--limit", "1")

        wait_for(lambda: run_state(cls.billing_run)["state"] == "success", 120, "nightly_billing to succeed")
        wait_for(lambda: run_state(cls.wide_run)["state"] == "success", 600, "ui_wide to succeed")

        def demo_settled():
            counts = run_state(cls.demo_run)["counts"]
            return (counts.get("shard", {}).get("success") == 2 and counts.get("shard", {}).get("failed") == 1
                    and counts.get("slow", {}).get("running") == 1 and counts.get("chatty", {}).get("success") == 1)

        wait_for(demo_settled, 120, "ui_demo: two shards done, gamma failed, slow running")
        cls.browser = new_browser()
        cls.console = []

    @classmethod
    def tearDownClass(cls):
        cls.browser.quit()
        code = cls.daemon.stop()
        if code != 0:
            raise AssertionError("batchd exited %d:\n%s" % (code, open(os.path.join(cls.root, "batchd.log")).read()))
        shutil.rmtree(cls.root, ignore_errors=True)

    # --- helpers ---

    def open(self, path, shot=None):
        b = self.browser
        b.get(self.daemon.url(path))
        WebDriverWait(b, 20).until(lambda drv: drv.find_element(By.TAG_NAME, "body").get_attribute("data-ready")
                                   == "true")
        self.assert_console_clean(path)
        if shot and ARGS.screenshots:
            os.makedirs(ARGS.screenshots, exist_ok=True)
            b.save_screenshot(os.path.join(ARGS.screenshots, shot + ".png"))

    def assert_console_clean(self, path):
        errors = [e for e in self.browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
        self.assertEqual(errors, [], "browser console on " + path)

    def all(self, css):
        return self.browser.find_elements(By.CSS_SELECTOR, css)

    def one(self, css):
        return self.browser.find_element(By.CSS_SELECTOR, css)

    # --- pages ---

    def test_dag_list_shows_every_dag_and_the_grid_the_states(self):
        self.open("/ui/", "dags")
        shown = sorted(tr.get_attribute("data-dag") for tr in self.all("#dags tr.dag"))
        self.assertEqual(shown, sorted(self.examples + ["ui_demo", "ui_wide"]))
        self.assertTrue(set(self.examples) <= set(shown))
        row = '#dags tr.dag[data-dag="nightly_billing"] '
        self.assertEqual(self.one(row + '.run-square[data-run="%s"]' % self.billing_run).get_attribute("data-state"),
                         "success")
        cells = self.all(row + '.cell[data-run="%s"]' % self.billing_run)
        self.assertGreater(len(cells), 0)
        self.assertEqual({c.get_attribute("data-state") for c in cells}, {"success"})
        demo = '#dags tr.dag[data-dag="ui_demo"] '
        self.assertEqual(self.one(demo + '.run-square[data-run="%s"]' % self.demo_run).get_attribute("data-state"),
                         "running")
        state = lambda task: self.one(demo + '.cell[data-run="%s"][data-task="%s"]' % (self.demo_run, task)) \
            .get_attribute("data-state")
        self.assertEqual(state("prepare"), "success")
        self.assertEqual(state("shard"), "failed")
        self.assertEqual(state("publish"), "upstream_failed")
        self.assertEqual(state("slow"), "running")
        # `pause --all` paused every example DAG; the list says so.
        self.assertIn("paused", self.one('#dags tr.dag[data-dag="backup"]').text)
        self.assertNotIn("paused", self.one('#dags tr.dag[data-dag="ui_demo"]').text)

    def test_dag_page_draws_one_node_per_task_and_an_edge_per_dependency(self):
        self.open("/ui/dags/nightly_billing", "dag")
        dag = self.daemon.ctl_json("show", "nightly_billing")
        tasks = [t["task"] for t in dag["tasks"]]
        edges = sum(len(t["depends_on"]) for t in dag["tasks"])
        WebDriverWait(self.browser, 10).until(lambda drv: len(self.all("#graph svg g.node")) == len(tasks))
        self.assertEqual(sorted(n.get_attribute("id") for n in self.all("#graph svg g.node")),
                         sorted("task-" + t for t in tasks))
        self.assertEqual(len(self.all("#graph svg g.edge")), edges)
        WebDriverWait(self.browser, 10).until(
            lambda drv: {n.get_attribute("data-state") for n in self.all("#graph svg g.node")} == {"success"})
        self.assertTrue(self.all('#runs tr.run[data-run="%s"]' % self.billing_run))
        self.open("/ui/dags/ui_demo")
        WebDriverWait(self.browser, 10).until(
            lambda drv: self.one("#graph svg g#task-slow").get_attribute("data-state") == "running")
        self.assertEqual(self.one("#graph svg g#task-shard").get_attribute("data-state"), "failed")
        # Text from the DAG file is shown as text: no element, no script, no console error.
        self.assertTrue(self.one("#dag-description").text.endswith("still running <img src=x onerror=alert(1)>"))
        self.assertIn("</script><script>alert(2)</script>", self.one("#params").text)
        self.assertEqual(self.all("#page img, #page script"), [])
        self.assert_console_clean("/ui/dags/ui_demo")
        self.assertEqual(len(self.all("#graph svg g.edge")), 2)

    def test_run_page_shows_counts_retries_and_the_failed_partition(self):
        self.open("/ui/runs/" + self.demo_run, "run")
        self.assertEqual(self.one('#gantt .row[data-task="slow"]').get_attribute("data-state"), "running")
        beta = '#gantt .row[data-task="shard"][data-partition="beta"] '
        self.assertEqual([b.get_attribute("data-outcome") for b in self.all(beta + ".bar")], ["failed", "success"])
        gamma = '#gantt .row[data-task="shard"][data-partition="gamma"] '
        self.assertEqual([b.get_attribute("data-outcome") for b in self.all(gamma + ".bar")], ["failed", "failed"])
        failed = self.one('#failed tr[data-task="shard"][data-partition="gamma"]')
        self.assertIn("exit code 7", failed.text)
        shard = self.one('.task-counts[data-task="shard"]')
        segs = {s.get_attribute("data-state") for s in shard.find_elements(By.CSS_SELECTOR, ".seg")}
        self.assertEqual(segs, {"success", "failed"})
        if ARGS.screenshots:
            self.browser.execute_script("document.getElementById('gantt').scrollIntoView()")
            self.browser.save_screenshot(os.path.join(ARGS.screenshots, "run-gantt.png"))

    def test_dead_letters_list_the_failed_partition_with_its_reason(self):
        self.open("/ui/dead-letters", "dead-letters")
        rows = self.all('#dead-letters tr[data-run="%s"][data-task="shard"][data-partition="gamma"]' % self.demo_run)
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0].find_element(By.CSS_SELECTOR, ".reason").text, "exit code 7")
        # beta failed once but was retried to success: no dead letter.
        self.assertEqual(self.all('#dead-letters tr[data-run="%s"][data-partition="beta"]' % self.demo_run), [])

    def test_log_page_shows_the_attempts_output_and_resources(self):
        self.open("/ui/logs/%s?task=shard&partition=beta&attempt=1" % self.demo_run, "logs")
        WebDriverWait(self.browser, 10).until(lambda drv: "beta: first try fails" in self.one("#log").text)
        info = self.one("#attempt-info").text
        self.assertIn("3", info)  # the exit code
        self.open("/ui/logs/%s?task=shard&partition=gamma" % self.demo_run)
        WebDriverWait(self.browser, 10).until(
            lambda drv: "gamma cannot reach the warehouse" in self.one("#log").text)
        # A running attempt is followed: what it prints next appears without a reload.
        self.open("/ui/logs/%s?task=slow" % self.demo_run)
        self.assertTrue(self.one("#follow").is_selected())
        ticks = lambda: [int(line.split()[1]) for line in self.one("#log").text.splitlines() if line.startswith("tick ")]
        WebDriverWait(self.browser, 10).until(lambda drv: ticks())
        seen = max(ticks())
        WebDriverWait(self.browser, 15).until(lambda drv: max(ticks()) >= seen + 2)
        self.assertEqual(ticks(), list(range(1, max(ticks()) + 1)))  # nothing lost or repeated
        # 1.9 MB of output: the tail starts near the end instead of reading it all.
        self.open("/ui/logs/%s?task=chatty" % self.demo_run)
        WebDriverWait(self.browser, 10).until(lambda drv: self.one("#log").text.endswith("\n300000"))
        self.assertNotIn("\n1000\n", self.one("#log").text)
        self.assertIn("earlier output not shown", self.one("#log-status").text)

    def test_a_page_of_the_ten_thousand_partition_run_is_ready_within_the_limit(self):
        self.open("/ui/runs/" + self.wide_run)  # warm: the first load compiles the script
        timings = []
        for _ in range(5):
            self.open("/ui/runs/" + self.wide_run)
            # Set by app.js when the page first drew its data: ms since navigation start.
            timings.append(float(self.one("body").get_attribute("data-ready-ms")))
        self.assertEqual(self.one('.task-counts[data-task="fan"]').get_attribute("data-task"), "fan")
        self.assertEqual(len(self.all("#gantt .row")), 200)
        best = min(timings)
        print("ui_wide run page ready after %.0f ms (best of 5: %s)" % (best, ", ".join("%.0f" % t for t in timings)))
        self.assertLess(best, PAGE_LIMIT_MS)

    def test_z_a_token_is_asked_for_and_a_wrong_one_refused(self):
        root = tempfile.mkdtemp(prefix="batchd-ui-token-")
        daemon = Daemon(root, "ui:\n  token: %s\n" % TOKEN)
        try:
            b = self.browser
            b.get(daemon.url("/ui/"))
            form = WebDriverWait(b, 20).until(lambda drv: drv.find_element(By.CSS_SELECTOR, "#token-form"))
            form.find_element(By.NAME, "token").send_keys("not-the-token-000000")
            form.find_element(By.CSS_SELECTOR, "button, input[type=submit]").click()
            WebDriverWait(b, 20).until(lambda drv: drv.find_element(By.CSS_SELECTOR, "#token-form").is_displayed())
            form = b.find_element(By.CSS_SELECTOR, "#token-form")
            form.find_element(By.NAME, "token").clear()
            form.find_element(By.NAME, "token").send_keys(TOKEN)
            form.find_element(By.CSS_SELECTOR, "button, input[type=submit]").click()
            expected = sorted(e["dag"] for e in daemon.ctl_json("dags"))
            WebDriverWait(b, 20).until(lambda drv: sorted(
                tr.get_attribute("data-dag") for tr in drv.find_elements(By.CSS_SELECTOR, "#dags tr.dag")) == expected)
            # The refused requests log 401s in the console; only those may be there.
            errors = [e for e in b.get_log("browser") if e["level"] == "SEVERE" and "401" not in e["message"]]
            self.assertEqual(errors, [])
            b.execute_script("sessionStorage.clear();")
        finally:
            self.assertEqual(daemon.stop(), 0)
            shutil.rmtree(root, ignore_errors=True)


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--batchd", required=True)
    parser.add_argument("--batchctl", required=True)
    parser.add_argument("--screenshots", help="directory for one PNG per page")
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
