"""``ttsopt bench``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ttsopt.cli._common import command, out, progress
from ttsopt.errors import TtsoptError
from ttsopt.runtime.threads import share_thread_pool


@command
def bench(
    package: Annotated[Path, typer.Argument(help="Package directory.")],
    seconds: Annotated[str | None, typer.Option(
        "--seconds", help="Audio lengths to time, comma-separated (default 1,5,20; GPT-SoVITS v4: 4,12).")] = None,
    repeat: Annotated[int, typer.Option("--repeat", help="Interleaved repetitions per length (medians reported).")] = 5,
    original: Annotated[Path | None, typer.Option("--original", help="Original checkpoint (default: the one the package was exported from).")] = None,
    original_config: Annotated[Path | None, typer.Option("--original-config", help="config.json of --original.")] = None,
    compare: Annotated[list[Path] | None, typer.Option(
        "--compare", help="Another package of the same model to time in the same run (repeatable), e.g. unpruned FP32/INT8.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    serve: Annotated[str | None, typer.Option(
        "--serve", help="Load-test a running `ttsopt serve` of this package at http://HOST:PORT instead.")] = None,
    streams: Annotated[str, typer.Option("--streams", help="With --serve: concurrent streams per level.")] = "1,2,4,8,16",
    requests: Annotated[int, typer.Option("--requests", help="With --serve: requests each stream sends per level.")] = 3,
    rate: Annotated[float | None, typer.Option("--rate", help="With --serve: also open-loop arrivals at this rate (per second).")] = None,
    duration: Annotated[float, typer.Option("--duration", help="With --serve --rate: seconds of arrivals.")] = 30.0,
    voice: Annotated[str | None, typer.Option("--voice", help="With --serve: the voice to request (default: the first).")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="With --serve: the server's API key.")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="With --serve: write the curve as a PNG here.")] = None,
) -> None:
    """Real-time factor of the package vs PyTorch eager and vs this machine's floor, measured in one run
    (with --serve: a running server's throughput curve under concurrent streams)."""
    share_thread_pool()  # runtime-only command: every session may share one pool
    if serve is not None:
        _load_test(package, serve, streams, requests, rate, duration, voice, api_key, plot, as_json)
        return
    from ttsopt.bench import BenchOptions, run_bench

    lengths = None
    if seconds is not None:
        try:
            lengths = tuple(float(s) for s in seconds.split(",") if s.strip())
        except ValueError:
            raise TtsoptError(f"--seconds must be numbers separated by commas, got {seconds!r}") from None
        if not lengths or min(lengths) <= 0:
            raise TtsoptError("--seconds needs positive lengths")
    for other in compare or []:
        if not (other / "manifest.json").is_file():
            raise TtsoptError(f"--compare {other} is not a ttsopt package: give a package directory")
    options = BenchOptions(lengths, repeat, original, original_config, tuple(compare or ()))
    with progress("benchmarking") as status:
        report = run_bench(package, options, step=lambda m: status.update(m))
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        for shown in report.render():
            out.print(shown)
        for note in report.notes:
            out.print(f"[yellow]note:[/] {escape(note)}")


def _load_test(package: Path, url: str, streams: str, requests: int, rate: float | None, duration: float,
               voice: str | None, api_key: str | None, plot: Path | None, as_json: bool) -> None:
    """``bench --serve``: closed-loop levels of concurrent streams (and an open-loop rate), one table row each."""
    from rich.table import Table

    from ttsopt.bench.load import LoadGenerator, LoadReport, plot_curve
    from ttsopt.package import read_manifest

    try:
        levels = [int(n) for n in streams.split(",") if n.strip()]
    except ValueError:
        raise TtsoptError(f"--streams must be whole numbers separated by commas, got {streams!r}") from None
    if not levels or min(levels) < 1 or requests < 1 or (rate is not None and (rate <= 0 or duration <= 0)):
        raise TtsoptError("--streams, --requests, --rate and --duration must be positive")
    manifest = read_manifest(package, check_files=False)
    generator = LoadGenerator(url, voice, api_key)
    if generator.sample_rate != manifest.sample_rate:
        raise TtsoptError(f"the server at {url} speaks at {generator.sample_rate} Hz but {package} at {manifest.sample_rate} Hz: "
                          "load-test the server of this package")
    report = LoadReport(url, generator.voice, generator.sample_rate, [])
    with progress("load test") as status:
        generator.request(0)  # warm-up: the first request pays session start-up
        for n in levels:
            status.update(f"{n} concurrent streams × {requests} requests")
            report.levels.append(generator.closed_loop(n, requests))
        if rate is not None:
            status.update(f"open loop: {rate:g} requests/s for {duration:g} s")
            report.levels.append(generator.open_loop(rate, duration))
    if plot is not None:
        plot_curve(report, str(plot))
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
        return
    table = Table(title=f"ttsopt serve at {url} (voice {report.voice}; streamed PCM, phonemes; measured at the client)")
    for column in ("load", "requests", "errors", "first audio p50 / p95", "per-stream RTF p50 / p95", "audio s / wall s", "real time"):
        table.add_column(column, justify="right")

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f} ms"

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    for level in report.levels:
        table.add_row(level.label, str(level.requests), str(level.errors) + (f" ({', '.join(level.error_kinds)})" if level.errors else ""),
                      f"{ms(level.first_audio_p50_s)} / {ms(level.first_audio_p95_s)}",
                      f"{ratio(level.rtf_p50)} / {ratio(level.rtf_p95)}", f"{level.audio_s_per_wall_s:.2f}",
                      "yes" if level.real_time else "no")
    out.print(table)
    _print_breakdown(report)


def _print_breakdown(report) -> None:
    """Where the server's time went at each level: how busy its cores were with onnxruntime, and each graph's share
    of that time with its milliseconds per second of audio delivered."""
    from rich.table import Table

    measured = [level for level in report.levels if level.onnxruntime_s]
    if not measured:
        return
    totals: dict[str, float] = {}
    for level in measured:
        for graph, seconds in level.onnxruntime_s.items():
            totals[graph] = totals.get(graph, 0.0) + seconds
    graphs = sorted(totals, key=totals.get, reverse=True)
    table = Table(title="Where the server's time went (its onnxruntime runs, from its /metrics): "
                        "share of the runs' time · ms per second of audio delivered")
    table.add_column("load", justify="right")
    table.add_column("cores running onnxruntime", justify="right")
    for graph in graphs:
        table.add_column(graph, justify="right")
    for level in measured:
        held, audio_s = sum(level.onnxruntime_s.values()), level.audio_s_per_wall_s * level.wall_s
        cells = []
        for graph in graphs:
            seconds = level.onnxruntime_s.get(graph, 0.0)
            cells.append(f"{100 * seconds / held:.0f} % · {1000 * seconds / audio_s:.0f}" if audio_s > 0
                         else f"{100 * seconds / held:.0f} %")
        table.add_row(level.label, f"{100 * level.cores_busy:.0f} %", *cells)
    out.print(table)
