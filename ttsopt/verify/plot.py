"""The spectrogram comparison PNG of ``verify --plot``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ttsopt.audio.mel import MelSettings, log_mel
from ttsopt.errors import TtsoptError
from ttsopt.runtime.package import Package


def golden_audio_pair(package: Package) -> tuple[np.ndarray, np.ndarray, str]:
    """The first golden item with an audio output: the original's output and the package's."""
    golden = package.golden
    for item in golden.items:
        graph = package.manifest.graphs[item["graph"]]
        audio = next((t.name for t in graph.outputs if t.kind == "audio"), None)
        if audio is not None:
            got = package.run(item["graph"], golden.inputs(item["name"]))[audio]
            return golden.outputs(item["name"])[audio], got, f"golden output ({item['name']})"
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
