"""``ttsopt bench PKG --serve URL``: the load generator against a real server (bounded: a few requests per
level), its table/JSON/PNG, and the decode-batch metrics the server exports while it runs."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import assert_one_line_error, ttsopt
from tests.serve.conftest import running_server


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{"))


def test_load_levels_json_plot_and_batch_metrics(tts_package: Path, tmp_path: Path):
    with running_server(tts_package, "--workers", "4", "--cache-mb", "0") as url:
        done = ttsopt("bench", tts_package, "--serve", url, "--streams", "1,4", "--requests", "2", "--rate", "4",
                      "--duration", "1", "--json", "--plot", tmp_path / "curve.png")
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        levels = report["levels"]
        assert [level["streams"] for level in levels[:2]] == [1, 4] and [level["requests"] for level in levels[:2]] == [2, 8]
        for level in levels:
            assert level["errors"] == 0 and level["audio_s_per_wall_s"] > 0 and level["rtf_p50"] > 0
            assert 0 < level["first_audio_p50_s"] <= level["first_audio_p95_s"]
        assert (tmp_path / "curve.png").stat().st_size > 10_000
        for level in levels:  # where the server's time went: every graph a request runs, within the wall time
            graphs = level["onnxruntime_s"]
            assert {"gpt_transformer", "latent", "generator"} <= set(graphs) and min(graphs.values()) > 0
            assert 0 < level["cores_busy"] <= 1.05 and sum(graphs.values()) == pytest.approx(level["cores_busy"] * level["wall_s"])
        metrics = httpx.get(f"{url}/metrics").text
        steps, rows = _metric(metrics, "ttsopt_decode_batch_rows_count"), _metric(metrics, "ttsopt_decode_batch_rows_sum")
        assert steps > 0 and rows >= steps and _metric(metrics, "ttsopt_decode_queue_wait_seconds_count") > 0
        assert _metric(metrics, "ttsopt_onnxruntime_runs_total") >= steps and 'graph="generator"' in metrics
        table = ttsopt("bench", tts_package, "--serve", url, "--streams", "2", "--requests", "1")
        assert table.returncode == 0 and "2 streams" in table.stdout and "audio s / wall s" in table.stdout
        assert "Where the server's time went" in table.stdout and "generator" in table.stdout


def test_load_generator_refuses_a_dead_address(tts_package: Path):
    assert_one_line_error(ttsopt("bench", tts_package, "--serve", "http://127.0.0.1:1"), "cannot reach the server")
    assert_one_line_error(ttsopt("bench", tts_package, "--serve", "localhost:8000"), "http://HOST:PORT")
