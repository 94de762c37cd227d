"""Thread settings on a shared machine: the user's choice wins, else torch gets the idle cores only."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from pdeforge import _threads


@pytest.fixture
def no_user_choice(monkeypatch):
    for name in ("OMP_NUM_THREADS", "PDEFORGE_THREADS"):
        monkeypatch.delenv(name, raising=False)


def test_the_users_choice_wins(monkeypatch, no_user_choice):
    monkeypatch.setenv("PDEFORGE_THREADS", "3")
    assert _threads.choose_threads() == 3
    monkeypatch.setenv("PDEFORGE_THREADS", "torch")
    assert _threads.choose_threads() is None
    monkeypatch.delenv("PDEFORGE_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _threads.choose_threads() is None
    before = torch.get_num_threads()
    assert _threads.adapt_threads(force=True) == before  # left alone


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="needs /proc/stat")
def test_a_busy_core_is_seen_and_left_to_its_process(no_user_choice):
    """One other process in a busy loop keeps one core busy: pdeforge counts it and uses one thread fewer."""
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy = _threads.busy_cores(0.3)
        assert busy is not None and busy >= 0.7, busy
        cores = len(os.sched_getaffinity(0))
        assert 1 <= _threads.choose_threads() <= max(1, cores - 1)
    finally:
        competitor.kill()
        competitor.wait()
