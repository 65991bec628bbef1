"""One onnxruntime thread pool per process, shared by every session ttsopt opens.

By default each ``InferenceSession`` owns an intra-op pool whose threads keep spinning for a while
after a run. With several sessions in one process (a text-to-speech package runs six graphs; ``bench``
and ``quantize`` alternate variants) the spinning threads of the idle pools take the cores from the
session that runs. Measured on 2 cores, FP32 and INT8 HiFi-GAN sessions alternating on 1 s of audio:
205 / 126 ms with a pool each, 164 / 89 ms with one shared pool (what each reaches alone).
"""

from __future__ import annotations

_shared: tuple[int, int] | None = None


def share_thread_pool(options, intra_op_threads: int = 0, inter_op_threads: int = 1) -> None:
    """Make ``options`` (an ``onnxruntime.SessionOptions``) use the process's shared pool, created with
    these sizes on first use; a session asking for other sizes keeps a pool of its own."""
    global _shared
    import onnxruntime as ort

    if _shared is None:
        ort.set_global_thread_pool_sizes(intra_op_threads, inter_op_threads)
        _shared = (intra_op_threads, inter_op_threads)
    if _shared == (intra_op_threads, inter_op_threads):
        options.use_per_session_threads = False
