"""The labelling page in a real headless browser (Debian's chromium and chromedriver,
driven by Selenium): a person labels four pairs with the paper's keys (left, right, up for
equal, down for can't tell) and every answer is in the store, as given. With
RLHP_SCREENSHOT=1 it also renews the screenshot in docs/ (never by default: a test run
leaves the checkout as it found it)."""
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from rlhp.envs import gridworld as g
from rlhp.human import clips
from rlhp.human.server import Server, make_app
from rlhp.human.store import Store

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture
def browser():
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1100,640", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_labelling_with_the_keyboard(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    store = Store(tmp_path / "labels.sqlite")
    rng = np.random.default_rng(0)
    walk = lambda: np.eye(g.NUM_CELLS, dtype=np.float32)[
        np.cumsum(rng.integers(0, 2, 12) * 5 + 1) % g.NUM_CELLS]
    pairs = []
    for _ in range(5):
        obs = np.stack([walk(), walk()])
        pair = store.add_query(obs, np.zeros((2, 12), np.int32), iteration=0)
        for side, seg in zip(("left", "right"), obs):
            clips.write(clips.gridworld_frames(seg), tmp_path / f"{pair}-{side}.mp4", 4)
        pairs.append(pair)
    clips.write(clips.gridworld_frames(walk()), tmp_path / "behaviour.mp4", 4)
    status = {"budget": 20, "env_steps": 4096, "true_return": 3.5, "behaviour_version": 1}
    server = Server(make_app(store, tmp_path, lambda: status)).start()
    try:
        browser.get(server.url)
        wait = WebDriverWait(browser, 60)
        body = browser.find_element(By.TAG_NAME, "body")
        wait.until(lambda d: body.get_attribute("data-pair") == str(pairs[0]))
        wait.until(lambda d: d.execute_script("return ['left', 'right', 'behaviour'].every("
                                              "id => document.getElementById(id).readyState >= 2)"))
        assert browser.save_screenshot(str(tmp_path / "page.png"))
        if os.environ.get("RLHP_SCREENSHOT") == "1":
            shutil.copy(tmp_path / "page.png", DOCS / "labelling-page.png")
        for n, key in enumerate([Keys.ARROW_LEFT, Keys.ARROW_RIGHT, Keys.ARROW_UP,
                                 Keys.ARROW_DOWN], 1):
            body.send_keys(key)
            wait.until(lambda d: body.get_attribute("data-saved") == str(n))
        wait.until(lambda d: body.get_attribute("data-pair") == str(pairs[4]))
    finally:
        server.stop()
    assert [(l.pair, l.answer) for l in store.labels()] == list(
        zip(pairs, ["left", "right", "equal", "cant_tell"]))
    assert store.pending() == [pairs[4]]


def test_keyboard_answers_reach_a_live_runs_database(browser, tmp_path):
    """The whole path with a real trainer: ``rlhp.run --teacher=human`` serves the page, a
    person answers four pairs with the keys, and the run's comparison database (its
    ``comparisons`` in metrics.jsonl) takes the three that say something (can't tell enters
    nothing), while the budget counts all four."""
    import json
    import subprocess
    import sys
    import time

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlhp.run", "--env=gridworld", "--teacher=human", "--steps",
         "4000000", "--checkpoint-every", "0", "--no-video", "--wandb", "disabled",
         "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=open(tmp_path / "stderr.log", "w"), text=True)

    def rows():
        path = run_dir / "metrics.jsonl"
        return [json.loads(l) for l in path.read_text().splitlines() if l] if path.exists() else []

    try:
        line = proc.stdout.readline()
        assert line.startswith("Labelling page: http://127.0.0.1:"), line
        browser.get(line.split()[-1])
        wait = WebDriverWait(browser, 300)
        body = browser.find_element(By.TAG_NAME, "body")
        for n, key in enumerate([Keys.ARROW_LEFT, Keys.ARROW_RIGHT, Keys.ARROW_UP,
                                 Keys.ARROW_DOWN], 1):
            wait.until(lambda d: (body.get_attribute("data-pair") or "") not in ("", "none"))
            body.send_keys(key)
            wait.until(lambda d: body.get_attribute("data-saved") == str(n))
        t0 = time.time()
        while not any(r.get("comparisons") == 3 for r in rows()):
            assert proc.poll() is None and time.time() - t0 < 300, "answers never inserted"
            time.sleep(1)
        time.sleep(3)  # a few more chunks: nothing inserted twice
        assert max(r.get("comparisons") or 0 for r in rows()) == 3
        assert max(r.get("labels") or 0 for r in rows()) >= 4  # can't tell is a label asked
    finally:
        proc.kill()
        proc.wait()


def test_explainer_answers_with_the_keys_reach_the_learner(browser, tmp_path):
    """The explainer in headless chromium, the "You are the labeler" preset: space plays,
    the run waits at each pair, the arrow keys answer (the path ending nearer the goal)
    and every answer reaches the learner's comparison database; the run plays to its
    end. With RLHP_SCREENSHOT=1 it runs the full-size preset and renews
    docs/explainer.png (taken at a pair half-way through)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    from test_explain import TINY

    from rlhp.human.explainer import Explainer, nearer_goal
    from rlhp.human.explainer_app import Session, make_explainer_app
    full = os.environ.get("RLHP_SCREENSHOT") == "1"
    session = Session(Explainer(0, **({} if full else TINY)), delay=0.05).start()
    session.submit("preset", "labeler")
    server = Server(make_explainer_app(session)).start()
    keys = {"left": Keys.ARROW_LEFT, "right": Keys.ARROW_RIGHT, "equal": Keys.ARROW_UP}
    try:
        browser.set_window_size(1180, 900)
        browser.get(server.url)
        wait = WebDriverWait(browser, 300)
        body = browser.find_element(By.TAG_NAME, "body")
        wait.until(lambda d: body.get_attribute("data-preset") == "labeler")
        body.send_keys(" ")
        wait.until(lambda d: body.get_attribute("data-playing") == "true")
        answers, shot = [], False
        while not (s := session.snapshot())["finished"]:
            q = s["query_pair"]
            if q is None:
                time.sleep(0.05)
                continue
            wait.until(lambda d: body.get_attribute("data-pair") == str(q["pair"]))
            if not shot and s["iteration"] >= s["iterations"] // 2:
                assert browser.save_screenshot(str(tmp_path / "explainer.png"))
                shot = True
            answers.append(nearer_goal(session.explainer.store.segments(q["pair"])[0]))
            body.send_keys(keys[answers[-1]])
            wait.until(lambda d: body.get_attribute("data-saved") == str(len(answers)))
        wait.until(lambda d: body.get_attribute("data-iteration") == str(s["iterations"]))
        assert body.get_attribute("data-playing") == "false"
    finally:
        server.stop()
        session.stop()
    assert shot and len(answers) >= 4
    assert s["labels"] == s["comparisons"] == len(answers)  # each answer in the database once
    assert [e["text"].split(": you answered ")[1] for e in s["events"]
            if ": you answered " in e["text"]] == answers
    if full:
        shutil.copy(tmp_path / "explainer.png", DOCS / "explainer.png")
