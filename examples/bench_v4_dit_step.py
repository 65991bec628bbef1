"""Time one v4 DiT (Euler) step at the released size: PyTorch eager vs onnxruntime FP32 vs dynamic INT8, interleaved.

The whole real-size ``ttsopt export`` of a v4 model did not fit this shared machine's memory (see BENCHMARKS.md), so
this script measures the stage that dominates v4's cost on its own: the LoRA merged into the base
(``examples/random_gpt_sovits.py --version v4``), the DiT step exported alone (torch.onnx, no simplifier), its
constant-weight MatMuls quantized by :func:`ttsopt.compiler.passes.matmul_int8.quantize_dynamic_matmuls` (what
``quantize --int8`` tries for ``dit_step``), each timed on one CFM call of ``--frames`` frames. To stay within
memory (the quantizer holds copies of the 1.35 GB graph) PyTorch eager is timed first and freed; the two
onnxruntime graphs are then timed interleaved::

    python examples/bench_v4_dit_step.py build/random-v4 --frames 600 --repeat 3

Prints a table and the peak RSS (VmHWM) of this process.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _time_eager(step, feed: dict[str, np.ndarray], repeat: int) -> tuple[np.ndarray, dict[str, list[float]]]:
    """The velocity (after a warm-up call) and ``repeat`` timings of the PyTorch module."""
    def eager() -> np.ndarray:
        with torch.inference_mode():
            return step(*(torch.from_numpy(v) for v in feed.values())).numpy()

    want = eager()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        eager()
        times.append(time.perf_counter() - start)
    return want, {"PyTorch eager FP32": times}


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from ttsopt.audio.metrics import snr_db
    from ttsopt.bench.memory import _peak_rss_kib
    from ttsopt.compiler.passes.matmul_int8 import quantize_dynamic_matmuls
    from ttsopt.families.gpt_sovits.v4.checkpoint import load_v4_sovits
    from ttsopt.families.gpt_sovits.v4.graphs import StepGraph

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", type=Path, help="directory of random_gpt_sovits.py --version v4")
    parser.add_argument("--frames", type=int, default=600, help="frames of the CFM call (prompt + chunk, at most 1000)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    loaded = load_v4_sovits(args.files / "s2_v4_lora32_random.pth", args.files / "s2Gv4_random.pth")
    dit = loaded.model.estimator
    del loaded
    step = StepGraph(dit).eval()
    sizes = dit.sizes
    rng = np.random.default_rng(0)
    length, prompt_frames = args.frames, args.frames // 2
    x = rng.standard_normal((1, sizes.mel_dim, length), dtype=np.float32)
    prompt = np.zeros_like(x)
    prompt[..., :prompt_frames] = rng.standard_normal((1, sizes.mel_dim, prompt_frames), dtype=np.float32)
    text = rng.standard_normal((1, length, sizes.text_dim), dtype=np.float32)
    with torch.inference_mode():
        text = dit.condition(torch.from_numpy(text)).numpy()
    feed = {"x": x, "prompt": prompt, "text_embed": text, "t": np.array([0.25], np.float32), "d": np.array([0.125], np.float32)}
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="v4-dit-") as scratch:
        fp32, dynamic = Path(scratch) / "fp32.onnx", Path(scratch) / "dynamic.onnx"
        batch, frames = torch.export.Dim("batch", min=1, max=8), torch.export.Dim("length", min=2, max=1000)
        example = tuple(torch.from_numpy(v) for v in feed.values())
        torch.onnx.export(step, example, str(fp32), dynamo=True, input_names=list(feed), output_names=["v"],
                          dynamic_shapes=({0: batch, 2: frames}, {0: batch, 2: frames}, {0: batch, 1: frames}, {0: batch}, {0: batch}),
                          external_data=False, verbose=False)

        want, times = _time_eager(step, feed, args.repeat)
        del step, dit
        gc.collect()
        record = quantize_dynamic_matmuls(fp32, dynamic)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        sessions = {name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                    for name, path in (("onnxruntime FP32", fp32), ("onnxruntime dynamic INT8", dynamic))}
        outputs = {"PyTorch eager FP32": want, **{name: s.run(None, feed)[0] for name, s in sessions.items()}}  # warm-up
        times |= {name: [] for name in sessions}
        for _ in range(args.repeat):
            for name, session in sessions.items():
                start = time.perf_counter()
                session.run(None, feed)
                times[name].append(time.perf_counter() - start)
    table = Table(title=f"v4 DiT step at the released size ({sizes.depth} × {sizes.dim}), {length} frames, "
                        f"medians of {args.repeat} (onnxruntime interleaved)")
    for column in ("variant", "s per step", "× eager", "velocity SNR dB vs eager"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    eager_s = statistics.median(times["PyTorch eager FP32"])
    for name, values in times.items():
        median = statistics.median(values)
        table.add_row(name, f"{median:.2f}", f"{eager_s / median:.2f}", f"{snr_db(want, outputs[name]):.1f}")
    console = Console()
    console.print(table)
    console.print(f"dynamic INT8: {record['quantized_matmuls']} MatMuls, {record['bytes']['fp32'] / 1e6:.0f} → "
                  f"{record['bytes']['quantized'] / 1e6:.0f} MB; peak RSS {_peak_rss_kib() / 2**20:.2f} GB")


if __name__ == "__main__":
    main()
