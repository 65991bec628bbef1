"""The user's g2pW (``GPT_SoVITS/text/G2PWModel``) as package payload, checked by running it once.

v2/v2Pro/v2ProPlus read Mandarin polyphones with it (v1's front end never did). The official converter
tokenises with the RoBERTa folder's ``tokenizer.json`` (its ``model_source`` is the BERT path), so the package
carries that file beside the model: ``g2pw/`` holds both, and the runtime (:mod:`ttsopt.runtime.text.g2pw`)
needs nothing else. Files are copied, not read into memory (the real ``g2pW.onnx`` is about 600 MB).
"""

from __future__ import annotations

import logging
from pathlib import Path

from ttsopt.errors import TtsoptError
from ttsopt.runtime.text.g2pw import G2PW, MODEL_FILES, TOKENIZER_FILE

ROLE, BERT_ROLE = "g2pw", "bert"
FOLDER = "g2pw"
#: Where a checkout keeps the RoBERTa folder, seen from ``GPT_SoVITS/text/G2PWModel``.
CHECKOUT_BERT = Path("..") / ".." / "pretrained_models" / "chinese-roberta-wwm-ext-large"
PROBE = "他说明天要去银行。"

log = logging.getLogger("ttsopt")


def tokenizer_file(g2pw: Path, bert: Path | None) -> Path:
    """The RoBERTa ``tokenizer.json`` the official converter uses: ``--bert``'s, else the checkout's own."""
    folder = bert if bert is not None else g2pw / CHECKOUT_BERT  # the given RoBERTa folder, else the checkout's
    if (folder / TOKENIZER_FILE).is_file():
        return (folder / TOKENIZER_FILE).resolve()
    where = f"{bert} has no {TOKENIZER_FILE}" if bert is not None else "no RoBERTa folder was given"
    raise TtsoptError(f"g2pW tokenises with chinese-roberta-wwm-ext-large's {TOKENIZER_FILE}, but {where}: give "
                      f"--bert GPT_SoVITS/pretrained_models/chinese-roberta-wwm-ext-large (or --pretrained CHECKOUT)")


def g2pw_payload(auxiliary: dict[str, Path], symbol_version: str) -> tuple[dict[str, Path], dict | None, G2PW | None]:
    """(package file → source file, the facts for ``runtime["auxiliary"]["g2pw"]``, the model to read the voices'
    transcripts with) for a v2-table model given a g2pW folder; nothing otherwise (v1 models read Chinese with
    pypinyin, as the official v1 front end does)."""
    folder = auxiliary.get(ROLE)
    if folder is None:
        return {}, None, None
    if symbol_version != "v2":
        log.warning("g2pW is not copied: %s models read Chinese with pypinyin, as the official %s front end does",
                    symbol_version, symbol_version)
        return {}, None, None
    tokenizer = tokenizer_file(folder, auxiliary.get(BERT_ROLE))
    model = G2PW(folder, tokenizer)  # checks the tables are there
    try:
        model([PROBE])
    except Exception as error:  # onnxruntime's own errors: a file that is not the official model's interface
        raise TtsoptError(f"--g2pw {folder}: {model.onnx_path.name} does not run with the official g2pW inputs "
                          f"({type(error).__name__}: {str(error).splitlines()[0][:200]}): give G2PWModel of your "
                          f"GPT-SoVITS checkout") from None
    files = {f"{FOLDER}/{name}": folder / name for name in MODEL_FILES[1:]}
    files[f"{FOLDER}/{MODEL_FILES[0]}"] = model.onnx_path  # g2pW.onnx or g2pw.onnx, stored as g2pW.onnx
    files[f"{FOLDER}/{TOKENIZER_FILE}"] = tokenizer
    facts = {"folder": FOLDER, "tokenizer": f"{FOLDER}/{TOKENIZER_FILE}", "source": str(Path(folder).resolve()),
             "tokenizer_source": str(tokenizer), "labels": len(model.labels)}
    return files, facts, model


__all__ = ["g2pw_payload", "tokenizer_file"]
