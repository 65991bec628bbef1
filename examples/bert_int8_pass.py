"""The ``bert`` graph's INT8 pass alone on a package (what ``quantize --int8`` does for that graph, without the other
graphs' searches, which take most of a real-size quantize): both candidates verified with the BERT gates in an INT8
copy of the package, timed against FP32, and the decision with its reason. Prints the record as JSON.

    python examples/bert_int8_pass.py build/real-tts-bert --work build/bert-int8-pass
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from ttsopt.audio.metrics import tensor_metrics
from ttsopt.compiler.passes import MatMulInt8, PassContext
from ttsopt.families.gpt_sovits.bert_verification import BERT_GATES, check_bert
from ttsopt.families.gpt_sovits.timing import bert_timer
from ttsopt.package.manifest import sha256_file
from ttsopt.runtime.bert import BERT_GRAPH
from ttsopt.runtime.package import Package
from ttsopt.targets import load_target
from ttsopt.verify.report import VerifyReport


def int8_copy(source: Path, work: Path) -> Path:
    """The package at ``work``: its other graphs hard-linked (never written), every other file copied, the manifest at
    INT8 with the cpu target's int8 gates of this checkout."""
    if work.exists():
        shutil.rmtree(work)

    def place(src: str, dst: str) -> None:
        if src.endswith(".onnx") and Path(src).name != "bert.onnx":
            Path(dst).hardlink_to(src)
        else:
            shutil.copy2(src, dst)
    shutil.copytree(source, work, copy_function=place)
    manifest = json.loads((work / "manifest.json").read_text())
    manifest["precision"] = "int8"
    manifest["target"]["gates"]["int8"] = load_target("cpu")["gates"]["int8"]
    (work / "manifest.json").write_text(json.dumps(manifest))
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args()
    work = int8_copy(args.package, args.work)

    def verify(candidate: Path) -> VerifyReport:
        (work / "bert.onnx").unlink()
        shutil.copy2(candidate, work / "bert.onnx")
        manifest = json.loads((work / "manifest.json").read_text())
        manifest["files"]["bert.onnx"] = sha256_file(work / "bert.onnx")
        (work / "manifest.json").write_text(json.dumps(manifest))
        package = Package(work)
        golden = package.golden
        rows = [{"item": i["name"], "graph": BERT_GRAPH, "output": "features",
                 **tensor_metrics(golden.outputs(i["name"])["features"], package.run(BERT_GRAPH, golden.inputs(i["name"]))["features"])}
                for i in golden.items if i["graph"] == BERT_GRAPH]
        report = VerifyReport(str(work), "cpu", "int8", golden=rows)
        check_bert(package, report)
        for row in report.golden:
            print(f"  {row['item']}: {row['output']} SNR {row['snr_db']:.1f} dB")
        return report

    context = PassContext(graph=BERT_GRAPH, gates={}, package=Package(args.package), verify=verify, step=print)
    record = MatMulInt8(gates=BERT_GATES, timer=bert_timer).apply(args.package / "bert.onnx", args.work / "chosen.onnx", context)
    print(json.dumps(record.to_dict(), indent=1, ensure_ascii=False))
    print(" | ".join(record.table_row(BERT_GRAPH)))


if __name__ == "__main__":
    main()
