"""How GPT-SoVITS files look on disk, for telling them apart before (and without) loading them as a model.

Torch-free: every loader's "this is X, not Y" errors ask the families through
:meth:`Family.recognize_header` / :meth:`Family.recognize_state`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: SoVITS files: the two bytes ``process_ckpt.my_save2`` writes in place of the zip magic ``PK``.
SOVITS_HEADER_TAGS = {b"00": "v1", b"01": "v2", b"02": "v3", b"03": "v3", b"04": "v4", b"05": "v2Pro",
                      b"06": "v2ProPlus"}
#: The tags of LoRA-only files (v3/v4 LoRA), which hold no full model.
SOVITS_LORA_TAGS = {b"03", b"04"}
#: Key prefixes of the ``weight`` dict of a SoVITS (s2) file.
SOVITS_PREFIXES = ("enc_p.", "dec.", "flow.", "cfm.")


def recognize_header(head: bytes) -> str | None:
    tag = head[:2]
    if tag not in SOVITS_HEADER_TAGS:
        return None
    lora = " LoRA" if tag in SOVITS_LORA_TAGS else ""
    return f"a GPT-SoVITS SoVITS {SOVITS_HEADER_TAGS[tag]}{lora} checkpoint (header tag {tag.decode()})"


def recognize_state(state: Any) -> str | None:
    weights = state.get("weight") if isinstance(state, Mapping) else None
    if not isinstance(weights, Mapping):
        return None
    if any(str(k).startswith("model.") for k in weights):
        return "a GPT-SoVITS GPT (s1, .ckpt) checkpoint"
    if any(str(k).startswith(SOVITS_PREFIXES) for k in weights):
        return "a GPT-SoVITS SoVITS (s2, .pth) checkpoint"
    return None
