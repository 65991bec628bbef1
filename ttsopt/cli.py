"""The ``ttsopt`` command line: a thin layer over the build, verify, runtime and bench APIs.

Errors the user can fix are printed as one line (``error: what is wrong: what to do``) with exit
status 2; a failed quality gate exits with 1; progress goes to stderr so ``--json`` output on stdout
stays machine-readable.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ttsopt.errors import QualityGateError, TtsoptError
from ttsopt.runtime.threads import share_thread_pool

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Export, optimise, verify and run neural TTS models (HiFi-GAN, GPT-SoVITS).")
out = Console()
err = Console(stderr=True)


class _NoteHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"[yellow]note:[/] {escape(record.getMessage())}", highlight=False, soft_wrap=True)


def _setup_logging() -> None:
    logger = logging.getLogger("ttsopt")
    if not any(isinstance(h, _NoteHandler) for h in logger.handlers):
        logger.addHandler(_NoteHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False


def command(fn: Callable) -> Callable:
    """Register ``fn`` as a subcommand whose user errors become one line and an exit status."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _setup_logging()
        try:
            return fn(*args, **kwargs)
        except QualityGateError as exc:
            err.print(f"[red]failed:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except TtsoptError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]: nothing was written")
            raise typer.Exit(130) from None

    return app.command()(wrapper)


def _fmt(value: float, digits: int = 4) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isinf(value):
        return "∞ (exact)" if value > 0 else "-∞"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}"


def _status(message: str):
    return err.status(message, spinner="dots")


@command
def export(
    output: Annotated[Path, typer.Option("-o", "--output", help="Package directory to write.")],
    checkpoint: Annotated[Path | None, typer.Argument(help="HiFi-GAN generator checkpoint (jik876 format).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="The HiFi-GAN checkpoint's config.json (default: beside it).")] = None,
    sovits: Annotated[Path | None, typer.Option("--sovits", help="GPT-SoVITS SoVITS weights (s2 .pth, v1/v2).")] = None,
    gpt: Annotated[Path | None, typer.Option("--gpt", help="GPT-SoVITS GPT weights (s1 .ckpt), with --sovits: a text-to-speech package.")] = None,
    voice: Annotated[list[str] | None, typer.Option(
        "--voice", help='NAME=ref.wav[:prompt_tokens.npy:"prompt phonemes"]: store this voice in the package (repeatable).')] = None,
    target: Annotated[str, typer.Option("--target", help="Target profile from configs/: cpu, t4, a10g.")] = "cpu",
    precision: Annotated[str | None, typer.Option("--precision", help="Override the target's default precision.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest's verification as JSON.")] = False,
) -> None:
    """Export a checkpoint to a verified, self-contained package (ONNX graphs, golden data, manifest).

    HiFi-GAN: ttsopt export generator.pth.tar -o PKG.  GPT-SoVITS: ttsopt export --gpt s1.ckpt --sovits s2.pth
    --voice NAME=ref.wav:prompt_tokens.npy:"prompt phonemes" -o PKG (without --gpt: the SoVITS decoder alone).
    """
    from ttsopt.build.exporter import export_package
    from ttsopt.build.tensorrt import build_engines, tensorrt_available

    family, sources = _export_sources(checkpoint, config, sovits, gpt, voice or [])
    with _status("exporting") as status:
        manifest = export_package(family, sources, target, output, precision, step=lambda message: status.update(message))
        unavailable = tensorrt_available() if manifest.tensorrt else None
        if manifest.tensorrt and unavailable is None:
            manifest = build_engines(output, output, step=lambda message: status.update(message))
    if as_json:
        out.print_json(json.dumps({"package": str(output), "verification": manifest.verification,
                                   "tensorrt": manifest.tensorrt.get("status")}))
        return
    gates = manifest.verification["gates"]
    out.print(f"[green]wrote[/] {output}  ({manifest.family} {manifest.task}, target {manifest.target['name']}, "
              f"{manifest.precision}; " + ", ".join(f"{g['name']} {_fmt(g['value'])}" for g in gates[:2]) + ")")
    if manifest.tensorrt:
        out.print(f"TensorRT engines: {escape(manifest.tensorrt['status'])}" if unavailable is None else
                  f"TensorRT engines not built ({escape(unavailable)}): run `ttsopt build {escape(str(output))}` on "
                  f"the {target} machine; until then the package runs on onnxruntime")


def _export_sources(checkpoint: Path | None, config: Path | None, sovits: Path | None, gpt: Path | None, voices: list[str]):
    """Which family the user asked for, and its inputs: a positional checkpoint is HiFi-GAN, --sovits (+ --gpt) GPT-SoVITS."""
    from ttsopt.build.spec import ExportSources, VoiceSource

    if gpt is not None and sovits is None:
        raise TtsoptError("--gpt needs --sovits too: a GPT-SoVITS package holds the GPT and the SoVITS model that speaks its tokens")
    if (checkpoint is None) == (sovits is None):
        raise TtsoptError("give a HiFi-GAN checkpoint (ttsopt export generator.pth.tar) or --sovits s2.pth, not both or neither")
    named = {}
    for entry in voices:
        name, sep, spec = entry.partition("=")
        parts = spec.split(":", 2)
        if not sep or not name or not parts[0] or len(parts) == 2:
            raise TtsoptError(f"--voice {entry!r} must be NAME=recording.wav or NAME=recording.wav:prompt_tokens.npy:\"prompt phonemes\"")
        if name in named:
            raise TtsoptError(f"voice {name!r} is given twice")
        named[name] = VoiceSource(Path(parts[0]), Path(parts[1]) if len(parts) == 3 else None,
                                  parts[2] if len(parts) == 3 else None)
    if checkpoint is not None:
        return "hifigan", ExportSources({"generator": checkpoint}, config, named)
    return "gpt_sovits", ExportSources({"sovits": sovits} | ({"gpt": gpt} if gpt else {}), config, named)


@command
def quantize(
    package: Annotated[Path, typer.Argument(help="FP32 package directory (from ttsopt export).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="INT8 package directory to write.")],
    int8: Annotated[bool, typer.Option(
        "--int8", help="Quantize to INT8 (the GPT decode step's weights go to INT4 where that passes and is faster).")] = False,
    calib: Annotated[Path | None, typer.Option(
        "--calib", help="Folder of .wav recordings or .npz saved inputs to calibrate on (default: bundled speech).")] = None,
    budget: Annotated[str | None, typer.Option(
        "--budget", help="METRIC=VALUE quality budget: logmel_l1 (default 0.05), greedy_agreement, logits_snr_db, snr_db.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was quantized and the quality as JSON.")] = False,
) -> None:
    """INT8 where it fits a quality budget and is faster (convolutions: searched layer by layer, then timed;
    GPT decode: weight-only INT8 or INT4); the package is written only if it passes."""
    from ttsopt.build.quantize import parse_budget, quantize_package
    from ttsopt.verify import json_safe

    if not int8:
        raise TtsoptError("say which precision: ttsopt quantize PKG --int8 -o OUT")
    limits = parse_budget(budget)
    with _status("quantizing") as status:
        manifest = quantize_package(package, output, limits, calib, step=lambda message: status.update(message))
    if as_json:
        out.print_json(json.dumps(json_safe({"package": str(output), "quantization": manifest.quantization,
                                             "verification": manifest.verification})))
        return
    for name, record in manifest.quantization.items():
        if "sensitivity" in record:
            _print_sensitivity(name, record)
    table = Table(title=f"{output}: INT8 graphs")
    for column in ("graph", "method", "INT8 / FP32 layers", "MB (FP32 → INT8)", "time (FP32 → INT8)", "speed-up"):
        table.add_column(column)
    for name, record in manifest.quantization.items():
        if "kept_fp32" in record:
            table.add_row(name, "FP32 kept (INT8 not faster)", f"0 / {len(record['fp32_layers'])}", "—",
                          f"{record['seconds']['fp32']:.2f} s", "—")
            continue
        if "sensitivity" in record:
            layers = f"{len(record['quantized_layers'])} / {len(record['fp32_layers'])} ({record['int8_flops_share']:.0%} of FLOPs INT8)"
            size = "—"
            timing = f"{record['seconds']['fp32']:.2f} → {record['seconds']['int8']:.2f} s"
        else:
            layers = f"{record['quantized_matmuls']} / {record['fp32_weight_matmuls']} MatMuls INT{record['bits']}"
            size = f"{record['bytes']['fp32'] / 1e6:.1f} → {record['bytes']['quantized'] / 1e6:.1f}"
            steps, chosen = record["decode_step_ms"], f"int{record['bits']}"
            timing = f"{steps['fp32']:.2f} → {steps[chosen]:.2f} ms/step (" + ", ".join(
                f"{key} {value:.2f}" for key, value in steps.items() if key != "fp32") + ")"
        table.add_row(name, record["method"], layers, size, timing, f"{record['speedup']:.2f}×")
    out.print(table)
    out.print("gates: " + "; ".join(f"{g['name']} {_fmt(g['value'])} ({'pass' if g['passed'] else 'FAIL'})"
                                    for g in manifest.verification["gates"]))


def _print_sensitivity(graph: str, record: dict) -> None:
    calibration = record["calibration"]
    out.print(f"{graph}: calibration {calibration['chosen']} (all layers INT8, log-mel L1: "
              + ", ".join(f"{k} {v:.3f}" for k, v in calibration["all_layers_logmel_l1"].items()) + ")")
    table = Table(title=f"{graph}: sensitivity (log-mel L1 with one layer INT8), most sensitive first")
    for column in ("layer", "log-mel L1", "precision"):
        table.add_column(column)
    for layer, value in sorted(record["sensitivity"].items(), key=lambda item: -item[1]):
        table.add_row(layer, f"{value:.4f}", "INT8" if layer in record["quantized_layers"] else "FP32")
    out.print(table)
    budget = record["budget"]
    out.print(f"search: {budget['fitting_layers']} layers INT8 fit log-mel L1 ≤ {budget['logmel_l1_max']:g} "
              f"(all layers: {budget['all_layers_logmel_l1']:.3f}); timed against FP32 "
              f"({record['seconds']['fp32']:.3f} s): "
              + ", ".join(f"{t['layers']} layers {t['seconds']:.3f} s" for t in record["seconds"]["timed_int8_layers"]))
    if "kept_fp32" in record:
        out.print(f"{graph} stays FP32: {record['kept_fp32']}")
    else:
        out.print(f"{graph}: {len(record['quantized_layers'])} layers INT8, search log-mel L1 {budget['search_logmel_l1']:.4f}")


@command
def build(
    package: Annotated[Path, typer.Argument(help="Package exported for a GPU target (--target t4 / a10g).")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Package to write (default: PACKAGE, replaced atomically).")] = None,
) -> None:
    """Build TensorRT engines for a GPU package on this machine's GPU, verify them against the golden outputs,
    and record GPU, compute capability and TensorRT version."""
    from ttsopt.build.tensorrt import build_engines

    with _status("building TensorRT engines") as status:
        manifest = build_engines(package, output or package, step=lambda message: status.update(message))
    record = manifest.tensorrt
    out.print(f"[green]built[/] {output or package}: {len(record['engines'])} engines, {record['status']}, "
              f"TensorRT {record['tensorrt_version']}; gates: "
              + "; ".join(f"{g['name']} {_fmt(g['value'])}" for g in manifest.verification["tensorrt"]["gates"]))


@command
def verify(
    package: Annotated[Path, typer.Argument(help="Package directory.")],
    reference: Annotated[list[Path] | None, typer.Option("--reference", help="Recording(s) to resynthesise and compare with.")] = None,
    original: Annotated[Path | None, typer.Option("--original", help="The original checkpoint, to show its own error beside the package's.")] = None,
    original_config: Annotated[Path | None, typer.Option("--original-config", help="config.json of --original (default: beside it).")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="Spectrogram comparison PNG (default: PACKAGE-verify.png).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Measure a package against the original model's outputs and reference recordings; exit 1 if a gate fails."""
    share_thread_pool()  # runtime-only command: every session may share one pool
    from ttsopt.verify import verify_package

    plot = plot or package.with_name(f"{package.name}-verify.png")
    with _status("verifying"):
        report = verify_package(package, reference or [], original, original_config, plot)
    if as_json:
        out.print_json(json.dumps(report.to_dict() | {"plot": str(plot)}))
    else:
        _print_verify(report, plot)
    if not report.passed:
        raise QualityGateError("; ".join(g.describe() for g in report.failed))


def _print_verify(report, plot: Path) -> None:
    table = Table(title=f"{report.package}: {report.precision} on {report.target}, against the original model's outputs")
    for column in ("item", "output", "SNR dB", "max abs err", "log-mel L1", "MR-STFT", "NaN/Inf"):
        table.add_column(column, justify="right" if column not in ("item", "output") else "left", no_wrap=column == "item")
    for row in report.golden:
        table.add_row(row["item"], row["output"], _fmt(row["snr_db"]), _fmt(row["max_abs_error"]),
                      _fmt(row.get("logmel_l1", "—")), _fmt(row.get("mrstft", "—")), str(row["nonfinite"]))
    out.print(table)
    if report.references and "package" in report.references[0]:
        table = Table(title="copy synthesis of reference recordings (the vocoder's own error)")
        for column in ("reference", "seconds", "package log-mel L1", "package MCD dB", "original log-mel L1", "original MCD dB"):
            table.add_column(column, justify="left" if column == "reference" else "right")
        for row in report.references:
            original = row.get("original")
            table.add_row(Path(row["reference"]).name, _fmt(row["seconds"]), _fmt(row["package"]["logmel_l1"]),
                          _fmt(row["package"]["mcd_db"]), _fmt(original["logmel_l1"]) if original else "—",
                          _fmt(original["mcd_db"]) if original else "— (give --original)")
        out.print(table)
    elif report.references:
        table = Table(title="reference recordings as voices: package vs original checkpoint, golden sentence, same noise")
        for column in ("reference", "seconds", "ge SNR dB", "audio SNR dB", "log-mel L1", "MR-STFT", "NaN/Inf"):
            table.add_column(column, justify="left" if column == "reference" else "right")
        for row in report.references:
            table.add_row(Path(row["reference"]).name, _fmt(row["seconds"]), _fmt(row["ge_snr_db"]), _fmt(row["snr_db"]),
                          _fmt(row["logmel_l1"]), _fmt(row["mrstft"]), str(row["nonfinite"]))
        out.print(table)
    table = Table(title="quality gates")
    for column in ("gate", "value", "limit", "result"):
        table.add_column(column)
    for gate in report.gates:
        table.add_row(gate.name, _fmt(gate.value), ("≥ " if gate.bound == "min" else "≤ ") + _fmt(gate.limit),
                      "[green]pass[/]" if gate.passed else "[red]FAIL[/]")
    out.print(table)
    out.print(f"spectrogram comparison: {plot}")
    out.print("[green]all gates pass[/]" if report.passed else "[red]quality gate failed[/]")


@command
def run(
    package: Annotated[Path, typer.Argument(help="Package directory.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="WAV file to write.")],
    wav: Annotated[Path | None, typer.Option("--wav", help="Vocoder: copy synthesis, recording → mel → vocoder.")] = None,
    mel: Annotated[Path | None, typer.Option("--mel", help="Vocoder: log-mel spectrogram .npy, [n_mels, frames].")] = None,
    tokens: Annotated[Path | None, typer.Option("--tokens", help="SoVITS: semantic tokens .npy (int, 25 Hz, EOS removed).")] = None,
    phonemes: Annotated[str | None, typer.Option("--phonemes", help='SoVITS: target phonemes, space-separated ("n i2 h ao3 .").')] = None,
    voice: Annotated[str | None, typer.Option("--voice", help="SoVITS: a voice stored in the package.")] = None,
    reference: Annotated[list[Path] | None, typer.Option("--reference", help="SoVITS: reference recording(s) instead of a stored voice.")] = None,
    noise_scale: Annotated[float, typer.Option("--noise-scale", help="SoVITS: prior temperature (official default 0.5).")] = 0.5,
    speed: Annotated[float, typer.Option("--speed", help="SoVITS: speaking rate (> 1 is faster).")] = 1.0,
    seed: Annotated[int | None, typer.Option("--seed", help="SoVITS/TTS: seed of the noise and the GPT's sampling.")] = None,
    bert: Annotated[Path | None, typer.Option("--bert", help="TTS: BERT features .npy [1024, phonemes] (default zeros).")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="TTS: keep the k most likely tokens (default: the GPT's config).")] = None,
    top_p: Annotated[float, typer.Option("--top-p", help="TTS: nucleus sampling threshold (1 = off).")] = 1.0,
    temperature: Annotated[float, typer.Option("--temperature", help="TTS: sampling temperature.")] = 1.0,
    repetition_penalty: Annotated[float, typer.Option("--repetition-penalty", help="TTS: official default 1.35.")] = 1.35,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="TTS: most semantic tokens to generate (25 per second).")] = 1500,
) -> None:
    """Synthesise audio with a package (no torch needed)."""
    share_thread_pool()  # runtime-only command: every session may share one pool
    import time

    from ttsopt.audio.io import write_wav
    from ttsopt.runtime import Synthesizer, TextToSpeech, load
    from ttsopt.runtime.arrays import read_npy
    from ttsopt.runtime.sampling import SamplingParams

    model = load(package)
    start = time.perf_counter()
    if isinstance(model, Synthesizer):
        if wav is not None or mel is not None:
            raise TtsoptError("--wav/--mel are for vocoder packages; a GPT-SoVITS package takes --phonemes (and --tokens)")
        if phonemes is None or (tokens is None and not isinstance(model, TextToSpeech)):
            raise TtsoptError("a SoVITS package needs --tokens tokens.npy and --phonemes \"...\"" if not isinstance(model, TextToSpeech)
                              else "give the text to speak as --phonemes \"...\"")
        if voice is not None and reference:
            raise TtsoptError("give --voice or --reference, not both")
        semantic = read_npy(tokens, "semantic tokens") if tokens is not None else None
        features = read_npy(bert, "BERT features") if bert is not None else None
        start = time.perf_counter()
        ge = model.voice_embedding(reference) if reference else voice
        if semantic is not None:
            audio = model.synthesize(semantic, phonemes, ge, noise_scale=noise_scale, speed=speed, seed=seed)
        else:
            params = SamplingParams(top_k=top_k or model.gpt.default_top_k, top_p=top_p, temperature=temperature,
                                    repetition_penalty=repetition_penalty, max_new_tokens=max_tokens, seed=seed)
            audio, result = model.speak(phonemes, ge, features, params, noise_scale=noise_scale, speed=speed)
            err.print(f"GPT: {result.tokens.size} semantic tokens, stopped by {result.stop_reason}", highlight=False)
    else:
        if tokens is not None or phonemes is not None or voice is not None or reference:
            raise TtsoptError("--tokens/--phonemes/--voice/--reference are for GPT-SoVITS packages; a vocoder takes --wav or --mel")
        if (wav is None) == (mel is None):
            raise TtsoptError("give exactly one of --wav or --mel")
        spectrogram = model.mel_from_wav(wav) if wav is not None else read_npy(mel, "mel")
        start = time.perf_counter()
        audio = model.vocode(spectrogram)
    elapsed = time.perf_counter() - start
    write_wav(output, audio, model.sample_rate)
    seconds = len(audio) / model.sample_rate
    out.print(f"[green]wrote[/] {output}  ({seconds:.2f} s at {model.sample_rate} Hz in {elapsed:.2f} s, RTF {elapsed / seconds:.3f})")


@command
def bench(
    package: Annotated[Path, typer.Argument(help="Package directory.")],
    seconds: Annotated[str, typer.Option("--seconds", help="Audio lengths to time, comma-separated.")] = "1,5,20",
    repeat: Annotated[int, typer.Option("--repeat", help="Interleaved repetitions per length (medians reported).")] = 5,
    original: Annotated[Path | None, typer.Option("--original", help="Original checkpoint (default: the one the package was exported from).")] = None,
    original_config: Annotated[Path | None, typer.Option("--original-config", help="config.json of --original.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Real-time factor of the package vs PyTorch eager and vs this machine's floor, measured in one run."""
    share_thread_pool()  # runtime-only command: every session may share one pool
    from ttsopt.bench import EAGER, FP32_PACKAGE, PACKAGE, run_bench, run_tts_bench
    from ttsopt.package import read_manifest

    if read_manifest(package, check_files=False).task == "tts":
        if original_config is not None:
            raise TtsoptError("--original-config is for HiFi-GAN packages")
        with _status("benchmarking") as status:
            report = run_tts_bench(package, repeat, original, step=lambda m: status.update(m))
        if as_json:
            out.print_json(json.dumps(report.to_dict()))
        else:
            _print_tts_bench(report)
        return

    try:
        lengths = tuple(float(s) for s in seconds.split(",") if s.strip())
    except ValueError:
        raise TtsoptError(f"--seconds must be numbers separated by commas, got {seconds!r}") from None
    if not lengths or min(lengths) <= 0:
        raise TtsoptError("--seconds needs positive lengths")
    with _status("benchmarking") as status:
        report = run_bench(package, lengths, repeat, original, original_config, step=lambda m: status.update(m))
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
        return
    machine = report.machine
    int8 = report.int8_peak_gops is not None
    table = Table(title=f"RTF (median of {report.repeat}, interleaved) on {machine['cpu']}, {machine['cores']} cores")
    columns = ["audio", PACKAGE, EAGER, "speed-up vs eager", "floor RTF", "% of floor"]
    if int8:
        columns[3:3] = [FP32_PACKAGE, "speed-up vs FP32 package"]
        columns += ["INT8 floor RTF", "% of INT8 floor"]
    for column in columns:
        table.add_column(column, justify="right")
    for row in report.rows:
        eager = row.get(EAGER)
        cells = [f"{row['seconds']:g} s", f"{row[PACKAGE]['rtf']:.3f}", f"{eager['rtf']:.3f}" if eager else "—",
                 f"{row['speedup_vs_eager']:.2f}×" if eager else "—",
                 f"{row['floor_rtf']:.3f}" if "floor_rtf" in row else "—",
                 f"{row['percent_of_floor']:.0f} %" if "percent_of_floor" in row else "—"]
        if int8:
            fp32 = row.get(FP32_PACKAGE)
            cells[3:3] = [f"{fp32['rtf']:.3f}" if fp32 else "—",
                          f"{row['speedup_vs_fp32_package']:.2f}×" if fp32 else "—"]
            cells += [f"{row['int8_floor_rtf']:.3f}" if "int8_floor_rtf" in row else "—",
                      f"{row['percent_of_int8_floor']:.0f} %" if "percent_of_int8_floor" in row else "—"]
        table.add_row(*cells)
    out.print(table)
    flop = report.flop_per_audio_second
    out.print(f"floor = {flop / 1e9:.1f} GFLOP per audio second / measured FP32 peak {report.peak_gflops:.0f} GFLOP/s"
              if flop else f"measured FP32 peak {report.peak_gflops:.0f} GFLOP/s (the package records no FLOP count)")
    if int8 and flop:
        out.print(f"INT8 floor = the same arithmetic / measured INT8 convolution peak {report.int8_peak_gops:.0f} GOP/s")
    out.print("CPU features: " + (", ".join(machine["features"]) or "none detected"))
    out.print("peak memory (fresh process, longest length): " +
              ", ".join(f"{name} {mb:.0f} MB" for name, mb in report.memory_mb.items()))
    for note in report.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")


def _print_tts_bench(report) -> None:
    from ttsopt.bench import EAGER, FP32_PACKAGE, PACKAGE

    machine = report.machine
    table = Table(title=f"text to speech (medians of {report.repeat}, interleaved) on {machine['cpu']}, {machine['cores']} cores")
    for column in ("sentence", "variant", "prefill ms", "decode tokens/s", "SoVITS RTF", "first audio s", "whole RTF",
                   "package speed-up vs this"):
        table.add_column(column, justify="left" if column in ("sentence", "variant") else "right")
    for row in report.rows:
        label = f"{row['sentence']}: {row['phonemes']} phonemes, {row['tokens']} tokens ({row['tokens'] / 25:g} s)"
        for name in (PACKAGE, FP32_PACKAGE, EAGER):
            if name not in row:
                continue
            r = row[name]
            key = {FP32_PACKAGE: "fp32_package", EAGER: "eager"}.get(name)
            speedup = (f"decode {row[f'decode_speedup_vs_{key}']:.2f}×, SoVITS {row[f'sovits_speedup_vs_{key}']:.2f}×, "
                       f"RTF {row[f'rtf_speedup_vs_{key}']:.2f}×" if key else "")
            table.add_row(label if name == PACKAGE else "", name, f"{r['prefill_ms']:.0f}", f"{r['decode_tokens_per_s']:.1f}",
                          f"{r['sovits_rtf']:.3f}", f"{r['time_to_first_audio_s']:.2f}", f"{r['rtf']:.3f}", speedup)
    out.print(table)
    for note in report.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")


@command
def inspect(
    package: Annotated[Path, typer.Argument(help="Package directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Show what a package holds: model, audio settings, graphs and their shapes, tools, verification."""
    from ttsopt.package import read_manifest

    manifest = read_manifest(package, check_files=True)
    if as_json:
        out.print_json(manifest.to_json())
        return
    mel = manifest.audio.get("mel", {})
    out.print(f"[bold]{package}[/]: {manifest.family} {manifest.task}, target {manifest.target['name']}, "
              f"{manifest.precision}, schema {manifest.schema_version}; all {len(manifest.files)} files match their sha256")
    out.print(f"audio: {manifest.sample_rate} Hz; mel: " + ", ".join(f"{k} {v}" for k, v in mel.items()))
    for role, path in manifest.source["checkpoints"].items():
        out.print(f"source {role}: {path} (sha256 {manifest.source['sha256'][role][:12]}…)")
    table = Table(title="graphs")
    for column in ("graph", "file", "size MB", "inputs", "outputs", "dim ranges (min/opt/max)"):
        table.add_column(column)
    for name, entry in manifest.graphs.items():
        size = (package / entry.file).stat().st_size / 1e6
        table.add_row(name, entry.file, f"{size:.1f}", _describe_tensors(entry.inputs), _describe_tensors(entry.outputs),
                      "\n".join(f"{d}: {r.min}/{r.opt}/{r.max}" for d, r in entry.dims.items()))
    out.print(table)
    voices = manifest.runtime.get("voices")
    if voices is not None:
        out.print("voices: " + (", ".join(f"{name} ({'with' if v.get('prompt') else 'no'} GPT prompt; from {Path(v['source']).name})"
                                          for name, v in voices.items()) or "none (synthesise with --reference ref.wav)"))
    gates = manifest.verification.get("gates", [])
    if gates:
        out.print("verified at export: " + "; ".join(
            f"{g['name']} {_fmt(g['value'])} ({'pass' if g['passed'] else 'FAIL'})" for g in gates))
    if "flop_per_audio_second" in manifest.cost:
        out.print(f"cost: {manifest.cost['flop_per_audio_second'] / 1e9:.1f} GFLOP per audio second")
    for name, record in manifest.quantization.items():
        out.print(f"precision of {name}: {_describe_precision(record)}")
    if manifest.tensorrt:
        profiles = sum(len(p) for p in manifest.tensorrt["profiles"].values())
        out.print(f"TensorRT: {escape(manifest.tensorrt['status'])} ({profiles} optimization profiles over "
                  f"{len(manifest.tensorrt['profiles'])} graphs)")
    out.print("made with " + ", ".join(f"{k} {v}" for k, v in manifest.tools.items()))


def _describe_precision(record: dict) -> str:
    if "fp32_islands" in record:
        return (f"FP16, {len(record['fp32_islands'])} FP32 islands "
                f"({', '.join(record['fp32_islands']) or 'none needed'}), output SNR {float(record['output_snr_db']):.1f} dB vs FP32")
    if "kept_fp32" in record:
        return f"FP32 ({record['kept_fp32']})"
    if "quantized_layers" in record:
        return (f"INT8 {len(record['quantized_layers'])} of {len(record['sensitivity'])} convolutions "
                f"({record['int8_flops_share']:.0%} of FLOPs, {record['calibration']['chosen']} calibration), "
                f"{record['speedup']:.2f}× measured at quantization")
    return f"{record['method']}, {record.get('speedup', 0):.2f}× decode step measured at quantization"


def _describe_tensors(specs) -> str:
    """One line per tensor; per-layer KV-cache tensors are summarised as one line."""
    lines = [f"{t.name} {t.dtype} {list(t.shape)}" for t in specs if t.kind != "cache"]
    caches = [t for t in specs if t.kind == "cache"]
    if caches:
        first = caches[0]
        lines.append(f"{first.name} … {caches[-1].name} ({len(caches)}) {first.dtype} {list(first.shape)}")
    return "\n".join(lines)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
