"""harness.experiments.claim: one writer per run folder, released when its holder dies (SIGKILL too)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

from harness.experiments.claim import CLAIM_FILE, claim, is_claimed, remove_stale_temporaries

HOLD = textwrap.dedent('''
    import sys, time
    from harness.experiments.claim import claim
    with claim(sys.argv[1]):
        print("held", flush=True)
        time.sleep(60)
''')


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_killed_holder_leaves_no_claim_behind(tmp_path):
    folder = tmp_path / "train-abc"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True,
                              cwd=os.getcwd())
    try:
        assert holder.stdout.readline().strip() == "held"
        assert is_claimed(folder)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=20)
        assert _wait(lambda: not is_claimed(folder))
        with claim(folder):          # at once, no stale lock to clean up
            assert (folder / CLAIM_FILE).exists()
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_second_claimant_waits_until_the_first_releases(tmp_path):
    folder, order = tmp_path / "run", []
    first_holds, release = threading.Event(), threading.Event()

    def first():
        with claim(folder):
            order.append("first in")
            first_holds.set()
            release.wait(10)
            order.append("first out")

    def second():
        first_holds.wait(10)
        with claim(folder):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    first_holds.wait(10)
    time.sleep(0.3)                  # the second thread is blocked on the claim by now
    assert order == ["first in"]
    release.set()
    for t in threads:
        t.join(10)
    assert order == ["first in", "first out", "second in"]


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    for name in (".state.pt.x1y2.tmp", "state.pt", "variant.json", CLAIM_FILE, "notes.tmp"):
        (tmp_path / name).write_text("x")
    removed = remove_stale_temporaries([tmp_path, tmp_path / "missing"])
    assert [p.name for p in removed] == [".state.pt.x1y2.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CLAIM_FILE, "notes.tmp", "state.pt",
                                                                 "variant.json"])
