"""The v4 golden check ``verify`` adds (torch-free): the whole chain of the golden voice through the package."""

from __future__ import annotations

import numpy as np

from ttsopt.audio.mel import MelSettings
from ttsopt.audio.metrics import golden_metrics
from ttsopt.runtime.package import Package
from ttsopt.verify.report import Gate, VerifyReport


def check_v4_chain(package: Package, report: VerifyReport) -> None:
    """The golden voice's whole chain (latent → CFM loop → vocoder) through the package vs the original's audio."""
    from ttsopt.runtime.sovits_v4 import V4Synthesizer

    with np.load(package.path / package.manifest.runtime["v4_reference"]) as data:
        ref = {key: data[key] for key in data.files}
    chain = {key[6:]: value for key, value in ref.items() if key.startswith("chain/") and key != "chain/audio"}
    audio = V4Synthesizer(package).decode(chain)
    row = golden_metrics(ref["chain/audio"], audio, MelSettings(**package.manifest.audio["mel"]))
    report.golden.append({"item": "v4 chain (latent → CFM × 8 steps → vocoder)", "graph": "latent → dit → vocoder",
                          "output": "audio", **row})
    gates = package.manifest.gates
    if "chain_snr_db_min" in gates:
        report.gates.append(Gate("v4 chain SNR dB (tokens → speech)", row["snr_db"], gates["chain_snr_db_min"], "min"))
    if "logmel_l1_max" in gates:
        report.gates.append(Gate("v4 chain log-mel L1", row["logmel_l1"], gates["logmel_l1_max"], "max"))
