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
"""

from __future__ import annotations

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
