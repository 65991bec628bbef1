"""The pruning record a package carries (``model_config["pruning"]``, written by ``ttsopt prune``), read on the
runtime side (torch-free): ``verify --original`` needs it to know that a package's golden outputs are the
*pruned* model's, and which budget the pruning itself was given against the unpruned original.

A pruned package is held to two budgets that add up when it is measured against the unpruned original:
the pruned checkpoint's (``pruned`` gates, measured by ``ttsopt prune``) and its precision's (``fp32`` or
``int8`` gates, measured against the pruned model's golden outputs).
"""

from __future__ import annotations

from pathlib import Path

from ttsopt.package.manifest import Manifest, sha256_file

#: Gate names of the record's ``quality.gates`` (written by :func:`ttsopt.compiler.prune.quality.measure`),
#: mapped to the profile key each one's limit came from.
LOGMEL_GATE = "log-mel L1 vs original (worst)"
EXCESS_GATE = "resynthesis log-mel L1 excess over original (worst)"
GATE_KEYS = {LOGMEL_GATE: "logmel_l1_max", EXCESS_GATE: "reference_logmel_l1_excess_max"}


def pruning_record(manifest: Manifest) -> dict | None:
    """The package's pruning record, or None for a package of an unpruned checkpoint."""
    return manifest.model_config.get("pruning")


def pruned_limits(record: dict) -> dict[str, float]:
    """The limits the pruned checkpoint was held to against the original, by profile key."""
    return {GATE_KEYS[gate["name"]]: float(gate["limit"]) for gate in record["quality"]["gates"] if gate["name"] in GATE_KEYS}


def pruned_from(record: dict | None, checkpoint: Path | None) -> bool:
    """Whether ``checkpoint`` is the unpruned checkpoint the record was pruned from (same bytes)."""
    if record is None or checkpoint is None or not Path(checkpoint).is_file():
        return False
    return sha256_file(Path(checkpoint)) == record["source"]["sha256"]
