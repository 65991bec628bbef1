"""The ``bert`` graph at every precision: its gates (feature SNR vs the original's FP32 features, the GPT's greedy
agreement with them), the INT8 pass (kept only where it passes and pays) and FP16, on the tiny oracle package
with the stand-in RoBERTa (real hidden size, 4 layers, random weights)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import AUX_ORACLE, assert_one_line_error, ttsopt
from ttsopt.audio.metrics import tensor_metrics
from ttsopt.compiler.passes import FP16, MatMulInt8, PassContext, record_from_dict
from ttsopt.families.gpt_sovits.bert_verification import BERT_GATES, FEATURES_GATE, GREEDY_GATE, check_bert
from ttsopt.families.gpt_sovits.timing import bert_timer
from ttsopt.package import read_manifest
from ttsopt.package.manifest import sha256_file
from ttsopt.package.precision import MatMulInt8Record
from ttsopt.runtime.bert import BERT_GRAPH
from ttsopt.runtime.package import Package
from ttsopt.verify.report import VerifyReport

pytestmark = pytest.mark.skipif(not (AUX_ORACLE / "chain.npz").is_file(), reason=f"oracle not found under {AUX_ORACLE}")


def bert_report(path: Path) -> VerifyReport:
    """The golden rows of the ``bert`` graph and both BERT gates of the package at ``path``."""
    package = Package(path)
    golden = package.golden
    rows = [{"item": item["name"], "graph": BERT_GRAPH, "output": "features",
             **tensor_metrics(golden.outputs(item["name"])["features"], package.run(BERT_GRAPH, golden.inputs(item["name"]))["features"])}
            for item in golden.items if item["graph"] == BERT_GRAPH]
    report = VerifyReport(str(path), "cpu", package.manifest.precision, golden=rows)
    check_bert(package, report)
    return report


@pytest.fixture
def scratch(tts_bert_package: Path, tmp_path: Path) -> Path:
    """A copy of the FP32 package whose ``bert`` graph a test replaces (:func:`put_graph`)."""
    copy = tmp_path / "pkg"
    shutil.copytree(tts_bert_package, copy)
    return copy


def put_graph(package: Path, graph: Path, **manifest_changes) -> None:
    """``graph`` as the package's ``bert`` graph, its checksum updated (and top-level manifest fields changed)."""
    shutil.copy2(graph, package / "bert.onnx")
    manifest = json.loads((package / "manifest.json").read_text())
    manifest["files"]["bert.onnx"] = sha256_file(package / "bert.onnx")
    (package / "manifest.json").write_text(json.dumps(manifest | manifest_changes))


def test_export_records_both_bert_gates(tts_bert_package: Path):
    """FP32: 100+ dB from the original, and the GPT's greedy choices all the same (teacher-forced and free-running)."""
    verification = read_manifest(tts_bert_package).verification
    gates = {gate["name"]: gate for gate in verification["gates"]}
    assert gates[FEATURES_GATE]["passed"] and gates[FEATURES_GATE]["value"] > 100 and gates[FEATURES_GATE]["limit"] == 60
    assert gates[GREEDY_GATE]["passed"] and gates[GREEDY_GATE]["value"] == 1.0
    greedy = [row for row in verification["golden"] if row["graph"] == "bert → gpt"]
    assert len(greedy) == 3 and all(row["first_token_difference"] is None for row in greedy)


def test_int8_pass_verifies_times_and_records_both_candidates(tts_bert_package: Path, scratch: Path, tmp_path: Path):
    """Both candidates (dynamic, weight-only) verified with the BERT gates in the package and timed against FP32;
    the graph written is the chosen candidate, or the FP32 graph byte for byte with the measured reason."""
    source = tts_bert_package / "bert.onnx"

    target = json.loads((scratch / "manifest.json").read_text())["target"]
    int8 = target | {"gates": {"int8": {"bert_snr_db_min": 25.0, "greedy_agreement_min": 0.95}}}

    def place(candidate: Path) -> Path:  # as quantize does: the candidate in an int8 package
        put_graph(scratch, candidate, precision="int8", target=int8)
        return scratch

    context = PassContext(graph=BERT_GRAPH, gates={}, package=Package(tts_bert_package),
                          verify=lambda candidate: bert_report(place(candidate)), place=place)
    record = MatMulInt8(gates=BERT_GATES, timer=bert_timer).apply(source, tmp_path / "bert.onnx", context)
    assert set(record.candidates) == {"dynamic", "weight-only"} and set(record.ms) == {"fp32", "dynamic", "weight-only"}
    for method, candidate in record.candidates.items():
        # 2 layers x 6 MatMuls; the 21128 x 1024 word embedding (86 MB) stays FP32.
        assert set(candidate["gates"]) == set(BERT_GATES) and candidate["quantized_matmuls"] == 12
        assert candidate["gates"][FEATURES_GATE] > 40 and candidate["bytes"]["quantized"] < candidate["bytes"]["fp32"] - 20e6
        assert candidate["speedup"] == pytest.approx(record.ms["fp32"] / record.ms[method])
    written = (tmp_path / "bert.onnx").read_bytes()
    if record.chosen is None:
        assert written == source.read_bytes() and record.speedup == 1.0
        assert all(f"{method}: " in record.kept_fp32 for method in record.candidates)
    else:
        assert record.candidates[record.chosen]["speedup"] >= 1.05 and not record.candidates[record.chosen]["failed"]
        assert written != source.read_bytes() and record.kept_fp32 is None
    again = record_from_dict(json.loads(json.dumps(record.to_dict())))
    assert isinstance(again, MatMulInt8Record) and again == record and len(again.table_row(BERT_GRAPH)) == 6


def test_a_failing_bert_gate_fails_verify_in_one_line(tts_bert_package: Path, scratch: Path, tmp_path: Path):
    """An INT8 graph in an FP32 package: FP32's 60 dB gate fails; verify says which gate, exit 1."""
    from ttsopt.compiler.passes.matmul_int8 import quantize_dynamic_matmuls

    quantize_dynamic_matmuls(tts_bert_package / "bert.onnx", tmp_path / "int8.onnx")
    put_graph(scratch, tmp_path / "int8.onnx")
    report = bert_report(scratch)
    assert {gate.name for gate in report.failed} == {FEATURES_GATE}, report.gates
    done = ttsopt("verify", scratch, "--plot", tmp_path / "v.png")
    assert_one_line_error(done, "BERT features SNR dB", "needs ≥ 60", code=1)


def test_fp16_bert_is_finite_and_passes_its_gates(tts_bert_package: Path, scratch: Path, tmp_path: Path):
    """The FP16 pass on the bert graph (as export --target t4/a10g runs it): no NaN/Inf on the golden sentences,
    islands only where measured, and both gates at the fp16 limits (35 dB, agreement 0.95)."""
    package = Package(tts_bert_package)
    feeds = [package.golden.inputs(i["name"]) for i in package.golden.items if i["graph"] == BERT_GRAPH]
    record = FP16().apply(tts_bert_package / "bert.onnx", tmp_path / "bert.onnx",
                          PassContext(graph=BERT_GRAPH, gates={"snr_db_min": 35.0}, feeds=feeds))
    assert record.output_snr_db > 35 and all(reason.startswith(("range", "error")) for reason in record.fp32_islands)
    target = json.loads((scratch / "manifest.json").read_text())["target"]
    put_graph(scratch, tmp_path / "bert.onnx", precision="fp16",
              target=target | {"gates": {"fp16": {"snr_db_min": 35.0, "greedy_agreement_min": 0.95}}})
    report = bert_report(scratch)
    assert all(np.isfinite(row["snr_db"]) and row["nonfinite"] == 0 for row in report.golden)
    assert {gate.name for gate in report.gates} == set(BERT_GATES) and report.passed, report.gates
