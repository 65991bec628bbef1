"""Runs on the shared onnxruntime pool take turns, first come first served (``ttsopt.runtime.threads``)."""

from __future__ import annotations

import threading
import time

import pytest

from ttsopt.runtime import threads


class Recording:
    """A stand-in session that records when each run starts and ends; a run may wait for an event."""

    def __init__(self, log: list, providers: tuple[str, ...] = ("CPUExecutionProvider",)):
        self.log, self.providers = log, providers

    def get_providers(self) -> list[str]:
        return list(self.providers)

    def run(self, name: str, hold: threading.Event | None = None) -> str:
        self.log.append(("start", name))
        if hold is not None:
            assert hold.wait(10)
        time.sleep(0.005)
        self.log.append(("end", name))
        return name


def _wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_runs_on_the_shared_pool_take_turns_in_arrival_order(monkeypatch):
    monkeypatch.setattr(threads, "_shared", (2, 1))
    log: list = []
    session = threads.taking_turns(Recording(log), "graph")
    hold = threading.Event()
    first = threading.Thread(target=session.run, args=("a", hold))
    first.start()
    _wait_until(lambda: ("start", "a") in log)
    waiting = []
    for name in "bcd":  # each queues behind the running one, in this order
        issued = threads._turns._issued
        waiting.append(threading.Thread(target=session.run, args=(name,)))
        waiting[-1].start()
        _wait_until(lambda issued=issued: threads._turns._issued == issued + 1)
    assert log == [("start", "a")]  # nobody runs beside the held run
    hold.set()
    for thread in (first, *waiting):
        thread.join(10)
    assert log == [(event, name) for name in "abcd" for event in ("start", "end")]
    assert session.get_providers() == ["CPUExecutionProvider"]  # everything else reaches the session


@pytest.mark.parametrize("shared, providers", [(None, ("CPUExecutionProvider",)),
                                               ((2, 1), ("CUDAExecutionProvider", "CPUExecutionProvider"))])
def test_sessions_off_the_shared_pool_or_off_the_cpu_run_freely(monkeypatch, shared, providers):
    monkeypatch.setattr(threads, "_shared", shared)
    session = Recording([], providers)
    assert threads.taking_turns(session, "graph") is session


def test_each_run_is_timed_inside_its_turn_under_its_graph(monkeypatch):
    """The clock counts the time a run held the cores, not its wait for its turn: a run queued behind a held one
    is charged its own few milliseconds, the held one its whole hold."""
    monkeypatch.setattr(threads, "_shared", (2, 1))
    monkeypatch.setattr(threads, "run_clock", threads.RunClock())
    held, queued = threads.taking_turns(Recording([]), "held"), threads.taking_turns(Recording([]), "queued")
    hold = threading.Event()
    first = threading.Thread(target=held.run, args=("a", hold))
    first.start()
    _wait_until(lambda: threads._turns._issued == threads._turns._serving + 1)
    issued = threads._turns._issued
    second = threading.Thread(target=queued.run, args=("b",))
    second.start()
    _wait_until(lambda: threads._turns._issued == issued + 1)
    time.sleep(0.2)
    hold.set()
    for thread in (first, second):
        thread.join(10)
    queued.run("c")
    totals = threads.run_clock.totals()
    assert totals["held"][1] == 1 and totals["held"][0] >= 0.2
    assert totals["queued"][1] == 2 and totals["queued"][0] < 0.1  # two 5 ms runs, not the 0.2 s wait
