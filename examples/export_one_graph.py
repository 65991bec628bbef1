"""Export one graph of a real-size model on its own, with each phase of the exporter announced on stderr.

Why: ``ttsopt export`` of a real-size package takes tens of minutes, and its memory peak sits in one graph's export
(the RoBERTa ``bert`` graph, the v4 ``dit_step``). This script loads only what that graph needs, calls the same
:func:`ttsopt.compiler.onnx_export.export_onnx` that ``ttsopt export`` calls, and prints a ``[  12.3 s] phase``
line when each step of it starts and ends (torch.onnx.export, onnx load/check/save, onnxslim, the fidelity
session...), so that ``examples/measure_memory.py --log`` puts every RSS sample next to the phase that held it::

    python examples/measure_memory.py --log build/bert.log -- \\
        python examples/export_one_graph.py --bert build/bertwork/roberta-large -o build/bert.onnx
    python examples/measure_memory.py --log build/dit.log -- \\
        python examples/export_one_graph.py --v4 build/random-v4 --graph dit_step -o build/dit_step.onnx

``--ttsopt ARGS...`` runs a whole ``ttsopt`` command (e.g. ``--ttsopt export --gpt …``) with the same phase lines, so a
whole export's peak is put on the step of the graph that held it. The trace cache is off (``TTSOPT_CACHE_DIR=off``):
every run traces. ``--v4`` takes the directory that
``examples/random_gpt_sovits.py --version v4`` writes (LoRA merged into the base, as ``ttsopt export`` does).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.1f} s] {message}", file=sys.stderr, flush=True)


def announce(owner: object, name: str, label: str) -> None:
    """Replace ``owner.name`` by a wrapper that says when a call starts and ends."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        say(f"{label} ...")
        try:
            return original(*args, **kwargs)
        finally:
            say(f"{label} done")

    setattr(owner, name, wrapper)


def instrument() -> None:
    import onnx
    import onnxruntime
    import onnxslim
    import torch

    from ttsopt.compiler import onnx_export

    announce(torch.onnx, "export", "torch.onnx.export")
    announce(onnx, "load", "onnx.load")
    announce(onnx, "save", "onnx.save")
    announce(onnx.checker, "check_model", "onnx.checker.check_model")
    announce(onnxslim, "slim", "onnxslim.slim")
    import onnxslim.core
    for name in ("optimize", "freeze"):
        announce(onnxslim.core, name, f"onnxslim {name}")
    announce(onnxruntime, "InferenceSession", "onnxruntime.InferenceSession")
    announce(onnx_export, "check_fidelity", "fidelity check")
    for name in ("_trace", "write_metadata", "release_memory", "save_streamed"):
        if hasattr(onnx_export, name):
            announce(onnx_export, name, name)
    try:
        from ttsopt.compiler import onnx_memory
    except ImportError:
        return  # an older checkout (e.g. to measure the "before") has not
    announce(onnx_memory, "infer_shapes", "onnx shape inference (onnxslim)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bert", type=Path, help="a chinese-roberta-wwm-ext-large folder (config.json, weights, tokenizer)")
    parser.add_argument("--v4", type=Path, help="the directory of random_gpt_sovits.py --version v4")
    parser.add_argument("--graph", default="dit_step", help="--v4: which graph (dit_step, latent, vocoder, ...)")
    parser.add_argument("-o", "--out", type=Path, help="the ONNX file to write")
    parser.add_argument("--ttsopt", nargs=argparse.REMAINDER, help="run this ttsopt command instead, instrumented")
    args = parser.parse_args()
    os.environ["TTSOPT_CACHE_DIR"] = "off"
    instrument()
    if args.ttsopt:
        import runpy

        sys.argv = ["ttsopt", *args.ttsopt]
        runpy.run_module("ttsopt", run_name="__main__", alter_sys=True)
        return
    if args.out is None:
        parser.error("give -o FILE.onnx")
    from ttsopt.compiler.onnx_export import export_onnx

    say("loading the model")
    if args.bert is not None:
        from ttsopt.families.gpt_sovits.bert import bert_graph, load_bert

        graph = bert_graph(load_bert(args.bert))
    elif args.v4 is not None:
        from ttsopt.families.gpt_sovits.v4.checkpoint import load_v4_sovits, load_vocoder
        from ttsopt.families.gpt_sovits.v4.graphs import graphs

        loaded = load_v4_sovits(args.v4 / "s2_v4_lora32_random.pth", args.v4 / "s2Gv4_random.pth")
        graph = next(g for g in graphs(loaded.model, load_vocoder(args.v4 / "vocoder_v4_random.pth")) if g.name == args.graph)
    else:
        parser.error("give --bert DIR or --v4 DIR")
    say(f"exporting {graph.name}")
    fidelity = export_onnx(graph, args.out, {"ttsopt.graph": graph.name})
    say("done")
    print(json.dumps({"graph": graph.name, "bytes": args.out.stat().st_size, **fidelity}))


if __name__ == "__main__":
    main()
