"""``ttsopt verify``: measure a package against the original model, in audio terms, and gate it.

(a) Against the golden outputs stored at export (the original PyTorch model on the verification set):
    waveform SNR, max abs error, log-mel L1 in the model's mel space, multi-resolution STFT distance.
(b) Against reference recordings (copy synthesis): log-mel L1 and MCD of the package's resynthesis,
    and of the original checkpoint's beside it when given, so the cost of the optimisation is visible
    next to the vocoder's own error.

Gates come from the package's target profile for its precision.  Torch is imported only for
``--original``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ttsopt.audio.io import read_wav
from ttsopt.audio.mel import MelSettings, log_mel
from ttsopt.audio.metrics import golden_metrics, max_abs_error, reference_metrics, snr_db
from ttsopt.errors import QualityGateError, TtsoptError
from ttsopt.runtime import Package, Synthesizer, load


@dataclass
class Gate:
    name: str
    value: float
    limit: float
    bound: str  # "min" or "max"

    @property
    def passed(self) -> bool:
        if isinstance(self.value, float) and math.isnan(self.value):
            return False
        return self.value >= self.limit if self.bound == "min" else self.value <= self.limit

    def describe(self) -> str:
        sign = "≥" if self.bound == "min" else "≤"
        return f"{self.name} {self.value:.4g} (needs {sign} {self.limit:g})"


@dataclass
class VerifyReport:
    package: str
    target: str
    precision: str
    golden: list[dict] = field(default_factory=list)
    references: list[dict] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)

    @property
    def failed(self) -> list[Gate]:
        return [gate for gate in self.gates if not gate.passed]

    @property
    def passed(self) -> bool:
        return not self.failed

    def require(self, subject: str) -> None:
        """Stop a stage whose output fails its gates: ``subject`` names what failed; the stage's
        :class:`PackageWriter` then discards its scratch directory, so nothing is written."""
        if not self.passed:
            raise QualityGateError(f"{subject} ({'; '.join(g.describe() for g in self.failed)}): nothing was written")

    def to_dict(self) -> dict:
        data = asdict(self)
        for gate, row in zip(self.gates, data["gates"], strict=False):
            row["passed"] = gate.passed
        data["passed"] = self.passed
        return json_safe(data)


def json_safe(value):
    """JSON has no infinities: an exact match (SNR = inf) is written as the string "inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf" if value < 0 else "nan"
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def _golden_arrays(package: Package) -> dict[str, np.ndarray]:
    with np.load(package.path / package.manifest.golden["file"]) as data:
        return {key: data[key] for key in data.files}


def _check_golden(package: Package) -> list[dict]:
    manifest = package.manifest
    mel = MelSettings(**manifest.audio["mel"]) if "mel" in manifest.audio else None
    arrays = _golden_arrays(package)
    rows = []
    for item in manifest.golden["items"]:
        graph = manifest.graphs[item["graph"]]
        inputs = {t.name: arrays[f"{item['name']}/in/{t.name}"] for t in graph.inputs}
        outputs = package.run(item["graph"], inputs)
        caches = [t.name for t in graph.outputs if t.kind == "cache"]
        for spec in graph.outputs:
            if spec.kind == "cache":
                continue
            want, got = arrays[f"{item['name']}/out/{spec.name}"], outputs[spec.name]
            metrics = golden_metrics(want, got, mel) if spec.kind == "audio" and mel is not None else _tensor_metrics(want, got)
            rows.append({"item": item["name"], "graph": item["graph"], "output": spec.name, **metrics})
        if caches:  # one row for all K/V outputs: the worst of each figure
            per_cache = [_tensor_metrics(arrays[f"{item['name']}/out/{name}"], outputs[name]) for name in caches]
            rows.append({"item": item["name"], "graph": item["graph"], "output": f"K/V × {len(caches)}",
                         "snr_db": min(m["snr_db"] for m in per_cache), "max_abs_error": max(m["max_abs_error"] for m in per_cache),
                         "nonfinite": sum(m["nonfinite"] for m in per_cache)})
    return rows


def _tensor_metrics(want: np.ndarray, got: np.ndarray) -> dict:
    return {"snr_db": snr_db(want, got), "max_abs_error": max_abs_error(want, got),
            "nonfinite": int(got.size - np.count_nonzero(np.isfinite(got)))}


def _golden_gates(rows: list[dict], gates: dict[str, float]) -> list[Gate]:
    result = []
    if "snr_db_min" in gates:
        result.append(Gate("golden SNR dB (worst)", min(r["snr_db"] for r in rows), gates["snr_db_min"], "min"))
    audio_rows = [r for r in rows if "logmel_l1" in r]
    if "logmel_l1_max" in gates and audio_rows:
        result.append(Gate("golden log-mel L1 (worst)", max(r["logmel_l1"] for r in audio_rows), gates["logmel_l1_max"], "max"))
    if "nonfinite_max" in gates:
        result.append(Gate("NaN/Inf samples", sum(r["nonfinite"] for r in rows), gates["nonfinite_max"], "max"))
    return result


def verify_golden(package: str | Path | Package) -> VerifyReport:
    """Check a package against its stored golden outputs only (what ``export`` runs before committing)."""
    package = package if isinstance(package, Package) else Package(package)
    rows = _check_golden(package)
    report = VerifyReport(str(package.path), package.manifest.target["name"], package.manifest.precision,
                          golden=rows, gates=_golden_gates(rows, package.manifest.gates))
    if package.manifest.task == "tts":
        _check_gpt(package, report)
    return report


def _check_gpt(package: Package, report: VerifyReport) -> None:
    """The original model's greedy run, replayed teacher-forced through the package (logits, greedy choices),
    then generated free-running and spoken with the stored noise (the whole chain against the original's audio)."""
    from ttsopt.runtime.sampling import sample_next_token
    from ttsopt.runtime.tts import TextToSpeech

    tts = TextToSpeech(package)
    with np.load(package.path / package.manifest.runtime["gpt"]["reference"]) as data:
        ref = {key: data[key] for key in data.files}
    params = _reference_params(package.manifest)
    ids, bert, prompt, tokens = ref["phoneme_ids"][0], ref["bert_features"], ref["prompt_tokens"], ref["tokens"]
    logits = [tts.gpt.prefill(ids, bert, prompt, reserve=len(tokens) + 1)]
    for j, token in enumerate(tokens[: len(ref["logits"]) - 1]):
        logits.append(tts.gpt.step(int(token), prompt.shape[1] + j))
    logits = np.stack(logits)
    history = np.concatenate((prompt[0], tokens))
    agree = 0
    for k, row in enumerate(logits):
        decision = sample_next_token(row, history[: prompt.shape[1] + k], k, params, None)
        expected = int(tokens[k]) if k < len(tokens) else params.eos_token
        agree += decision.token == expected or (decision.is_eos and expected == params.eos_token)
    generated = tts.gpt.generate(ids, bert, prompt[0], params).tokens
    chain = {key[6:]: value for key, value in ref.items() if key.startswith("chain/") and key != "chain/audio"}
    if np.array_equal(generated, chain["tokens"][0]):
        audio = tts.decode(chain)
    else:  # different tokens make different speech; compare what there is, the gate will fail
        audio = np.zeros_like(ref["chain/audio"])
    report.golden.append({"item": "gpt-reference (teacher-forced)", "graph": "gpt_transformer", "output": "logits",
                          **_tensor_metrics(ref["logits"], logits)})
    chain_row = golden_metrics(ref["chain/audio"], audio, MelSettings(**package.manifest.audio["mel"]))
    report.golden.append({"item": "whole chain (GPT tokens → speech)", "graph": "gpt → latent → generator",
                          "output": "audio", **chain_row})
    gates = package.manifest.gates
    report.gates += [
        Gate("GPT greedy agreement (teacher-forced)", agree / len(logits), gates.get("greedy_agreement_min", 1.0), "min"),
        Gate("GPT logits SNR dB (teacher-forced)", report.golden[-2]["snr_db"],
             gates.get("logits_snr_db_min", gates.get("snr_db_min")), "min"),
    ]
    if "chain_snr_db_min" in gates:  # exact precisions only: one flipped greedy choice changes all later speech
        report.gates.append(Gate("whole chain SNR dB (GPT tokens → speech)", chain_row["snr_db"], gates["chain_snr_db_min"], "min"))


def _reference_params(manifest):
    """The sampling settings of the stored reference generation (greedy, official repetition penalty)."""
    from ttsopt.runtime.sampling import SamplingParams

    return SamplingParams(**manifest.runtime["gpt"]["reference_params"])


def verify_package(path: str | Path, references: list[Path] = (), original: Path | None = None,
                   original_config: Path | None = None, plot: Path | None = None) -> VerifyReport:
    """Full verification: golden outputs, reference recordings, optional original, gates, plot."""
    model = load(path)
    report = verify_golden(model.package)
    if isinstance(model, Synthesizer):
        plot_pair = _check_voices(model, report, references, original, original_config)
    else:
        plot_pair = _check_copy_synthesis(model, report, references, original, original_config)
    if plot is not None:
        mel = MelSettings(**model.manifest.audio["mel"])
        write_spectrogram_comparison(plot, *(plot_pair or _golden_audio_pair(model.package)), mel)
    return report


def _load_original(manifest, original: Path | None, original_config: Path | None):
    from ttsopt.families import spec_module

    try:
        return spec_module(manifest.family).load_eager(manifest, original, original_config)
    except ImportError:
        raise TtsoptError("running the original checkpoint needs PyTorch, which is not installed here: "
                          "pip install 'ttsopt[build]', or verify without it") from None


def _check_copy_synthesis(vocoder, report: VerifyReport, references, original, original_config):
    """Vocoders: resynthesise each recording from its mel; the original's own error beside the package's."""
    manifest = vocoder.manifest
    eager = _load_original(manifest, original, original_config) if original is not None else None
    plot_pair = None
    for reference in references:
        recording = read_wav(reference, vocoder.sample_rate)
        mel = vocoder.mel(recording)
        output = vocoder.vocode(mel)
        row = {"reference": str(reference), "seconds": round(len(recording) / vocoder.sample_rate, 3),
               "package": reference_metrics(recording, output, vocoder.mel_settings)}
        if eager is not None:
            row["original"] = reference_metrics(recording, eager(mel[None]), vocoder.mel_settings)
        report.references.append(row)
        plot_pair = plot_pair or (recording, output, f"reference {Path(reference).name}")
    if eager is not None and report.references:
        excess = max(r["package"]["logmel_l1"] - r["original"]["logmel_l1"] for r in report.references)
        limit = manifest.gates.get("reference_logmel_l1_excess_max")
        if limit is not None:
            report.gates.append(Gate("reference log-mel L1 excess over original", excess, limit, "max"))
    return plot_pair


def _check_voices(synth, report: VerifyReport, references, original, original_config):
    """SoVITS: each recording as a new voice. The package (reference encoder graph, then the decode graphs)
    and the original checkpoint synthesise the golden sentence with it from the same tokens and noise;
    their audio is compared with the golden gates. Needs the original (default: the exported checkpoint)."""
    if not references:
        return None
    eager = _load_original(synth.manifest, original, original_config)
    arrays = _golden_arrays(synth.package)
    item = next(i["name"] for i in synth.manifest.golden["items"] if i["graph"] == "latent")
    inputs = {k[len(item) + 4:]: v for k, v in arrays.items() if k.startswith(f"{item}/in/")}
    rows, plot_pair = [], None
    for reference in references:
        recording = read_wav(reference, synth.sample_rate)
        ge_package = synth.voice_embedding([recording])
        ge_original = eager.reference_embedding(synth.reference_spectrogram(recording))
        output = synth.decode(inputs | {"ge": ge_package})
        expected = eager(inputs | {"ge": ge_original})
        row = {"reference": str(reference), "seconds": round(len(recording) / synth.sample_rate, 3),
               "ge_snr_db": snr_db(ge_original, ge_package),
               **golden_metrics(expected, output, MelSettings(**synth.manifest.audio["mel"]))}
        rows.append(row)
        plot_pair = plot_pair or (expected, output, f"original model, voice from {Path(reference).name}")
    report.references.extend(rows)
    gates = synth.manifest.gates
    if "snr_db_min" in gates:  # exact precisions; an INT8 generator is held by the log-mel gate
        report.gates.append(Gate("voice SNR dB vs original (worst)", min(r["snr_db"] for r in rows), gates["snr_db_min"], "min"))
    report.gates.append(Gate("voice log-mel L1 vs original (worst)", max(r["logmel_l1"] for r in rows),
                             gates["logmel_l1_max"], "max"))
    return plot_pair


def _golden_audio_pair(package: Package) -> tuple[np.ndarray, np.ndarray, str]:
    """The first golden item with an audio output: the original's output and the package's."""
    arrays = _golden_arrays(package)
    for item in package.manifest.golden["items"]:
        graph = package.manifest.graphs[item["graph"]]
        audio = next((t.name for t in graph.outputs if t.kind == "audio"), None)
        if audio is not None:
            inputs = {t.name: arrays[f"{item['name']}/in/{t.name}"] for t in graph.inputs}
            return arrays[f"{item['name']}/out/{audio}"], package.run(item["graph"], inputs)[audio], f"golden output ({item['name']})"
    raise TtsoptError(f"package {package.path} has no golden audio to plot")


def write_spectrogram_comparison(path: Path, reference: np.ndarray, output: np.ndarray, label: str,
                                 mel: MelSettings) -> None:
    """PNG with three log-mel panels: the reference, the package's output, and their difference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(reference.reshape(-1)), len(output.reshape(-1)))
    ref_mel, out_mel = log_mel(reference.reshape(-1)[:n], mel), log_mel(output.reshape(-1)[:n], mel)
    seconds = n / mel.sample_rate
    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True, constrained_layout=True)
    extent = (0, seconds, 0, mel.n_mels)
    low, high = min(ref_mel.min(), out_mel.min()), max(ref_mel.max(), out_mel.max())
    for axis, data, title, cmap, limits in (
            (axes[0], ref_mel, label, "magma", (low, high)),
            (axes[1], out_mel, "package output", "magma", (low, high)),
            (axes[2], out_mel - ref_mel, "difference (output − reference), log-mel", "coolwarm", (-2, 2))):
        image = axis.imshow(data, origin="lower", aspect="auto", extent=extent, cmap=cmap,
                            vmin=limits[0], vmax=limits[1], interpolation="nearest")
        axis.set_title(title)
        axis.set_ylabel("mel bin")
        fig.colorbar(image, ax=axis)
    axes[2].set_xlabel("seconds")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
