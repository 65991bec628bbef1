"""One onnxruntime thread pool for the whole process, shared by every session ttsopt opens (opt-in).

By default each ``InferenceSession`` owns an intra-op pool whose threads keep spinning for a while
after a run. With several sessions in one process (a text-to-speech package runs six graphs; ``bench``
alternates variants) the spinning threads of the idle pools take the cores from the session that runs.
Measured on 2 cores, FP32 and INT8 HiFi-GAN sessions alternating on 1 s of audio: 205 / 126 ms with a
pool each, 172 / 95 ms with one shared pool (about what each reaches alone).

Once a process has a shared pool, onnxruntime refuses sessions that ask for a pool of their own, and
its quantization tools create such sessions; so sharing is opt-in: the runtime commands (``run``,
``verify``, ``bench``) opt in, the build commands do not, and a library user calls
:func:`share_thread_pool` before opening packages.

On a shared pool the CPU sessions' runs also take turns (:func:`taking_turns`), first come first served. The pool
has a thread per core and every run's calling thread works beside it, so two runs at once put twice as many threads
on the cores as there are cores, each run's work split for cores it does not get. Measured on 2 cores (INT8 v2: a
batch-8 GPT decode step and the SoVITS generator on 1 s of audio, each from its own thread for 4 s, 3 rounds): at
once, the two did 0.80-0.85 of the work they do one after the other alone in the same time; taking turns, 0.96-0.99.
Two generator runs at once: 85 ms per run against 71 ms one after the other.

Inside its turn a run has the cores to itself, so the time it takes there is what its graph cost the process:
:data:`run_clock` adds it up per graph (``/metrics`` of ``ttsopt serve`` exports it, and ``ttsopt bench --serve``
turns it into each load level's breakdown: where a loaded server's time goes, and how much of the wall time the
cores ran onnxruntime at all).
"""

from __future__ import annotations

import threading
import time

_shared: tuple[int, int] | None = None


def share_thread_pool(intra_op_threads: int = 0, inter_op_threads: int = 1) -> None:
    """From now on, sessions ttsopt opens in this process share one pool of these sizes (0 intra-op
    threads: one per physical core). Every onnxruntime session the process creates afterwards must use
    it, so call this only where no other library creates sessions of its own."""
    global _shared
    if _shared is None:
        import onnxruntime as ort

        ort.set_global_thread_pool_sizes(intra_op_threads, inter_op_threads)
        _shared = (intra_op_threads, inter_op_threads)


def use_shared_pool(options) -> bool:
    """Point ``options`` (an ``onnxruntime.SessionOptions``) at the shared pool if the process has one."""
    if _shared is not None:
        options.use_per_session_threads = False
    return _shared is not None


class _Turns:
    """A first-come-first-served lock: no caller waits while later ones go first (a decode step queued behind
    SoVITS runs keeps its place)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._issued = self._serving = 0

    def __enter__(self) -> None:
        with self._changed:
            ticket, self._issued = self._issued, self._issued + 1
            while ticket != self._serving:
                self._changed.wait()

    def __exit__(self, *exc) -> None:
        with self._changed:
            self._serving += 1
            self._changed.notify_all()


_turns = _Turns()


class RunClock:
    """Seconds and runs per graph of the runs that took turns in this process, counted from process start."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, tuple[float, int]] = {}

    def add(self, graph: str, seconds: float) -> None:
        with self._lock:
            held, runs = self._totals.get(graph, (0.0, 0))
            self._totals[graph] = (held + seconds, runs + 1)

    def totals(self) -> dict[str, tuple[float, int]]:
        """``{graph: (seconds, runs)}`` so far."""
        with self._lock:
            return dict(self._totals)


#: The process's clock of runs on the shared pool (see the module docstring).
run_clock = RunClock()


class _TakingTurns:
    """An ``InferenceSession`` whose runs take turns with every other such session's (see the module docstring),
    each timed inside its turn as ``graph`` on :data:`run_clock`."""

    def __init__(self, session, graph: str) -> None:
        self._session, self._graph = session, graph

    def _timed(self, run, *args, **kwargs):
        with _turns:
            started = time.perf_counter()
            try:
                return run(*args, **kwargs)
            finally:
                run_clock.add(self._graph, time.perf_counter() - started)

    def run(self, *args, **kwargs):
        return self._timed(self._session.run, *args, **kwargs)

    def run_with_iobinding(self, *args, **kwargs):
        return self._timed(self._session.run_with_iobinding, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._session, name)


def taking_turns(session, graph: str):
    """``session`` (of graph ``graph``) made to take turns with the others on the shared pool; as it is when the
    process shares no pool or the session runs elsewhere than the CPU (a GPU's runs overlap usefully)."""
    if _shared is None or session.get_providers() != ["CPUExecutionProvider"]:
        return session
    return _TakingTurns(session, graph)
