"""The GPT prompt of a voice stored at export, one owner for v1/v2/v2Pro and v4 (the same GPT reads it).

A ``--voice`` prompts the GPT with what was said in its recording: given as semantic tokens and phonemes
(``NAME=ref.wav:tokens.npy:phonemes``), or made from a transcript (``NAME=ref.wav|LANG|transcript``) as the official
code makes it, by the original HuBERT + SoVITS ``extract_latent`` (the tokens), the package's text front end (the
phones: its g2pW, its language identifier) and, for a Chinese transcript, the original RoBERTa (``prompt_bert``,
which the GPT reads as the prompt's feature columns; other languages read zeros, as officially). What each family
does with the recording itself (v2's ``ge``, v4's ``ge`` and prompt window) stays in its own spec.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ttsopt.compiler.spec import ExportSources, VoiceSource
from ttsopt.errors import TtsoptError
from ttsopt.runtime.arrays import read_int_array
from ttsopt.runtime.phonemes import PhonemeTable
from ttsopt.runtime.text import Sentence
from ttsopt.runtime.text.g2pw import G2PW
from ttsopt.runtime.voice import transcript_phones

VOICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
HUBERT_HINT = "give --hubert GPT_SoVITS/pretrained_models/chinese-hubert-base (or --pretrained CHECKOUT)"


def check_voice_name(name: str) -> None:
    if not VOICE_NAME.match(name):
        raise TtsoptError(f"voice name {name!r} is not usable: use letters, digits, '_', '-', '.' (e.g. --voice alice=ref.wav)")


@dataclass(frozen=True)
class VoicePrompts:
    """What turns a ``--voice`` into its GPT prompt arrays (``NAME/prompt_tokens``, ``NAME/prompt_phonemes`` and,
    for a Chinese transcript when the package has RoBERTa, ``NAME/prompt_bert``)."""

    table: PhonemeTable
    codebook_size: int
    #: recording → prompt codes by the original HuBERT and SoVITS (None: the package has no HuBERT).
    codes: Callable[[Path], np.ndarray] | None = None
    #: The package's g2pW (reads a Chinese transcript's polyphones as the package will); None: pypinyin.
    g2pw: G2PW | None = None
    #: A sentence's BERT matrix ``[hidden, phones]`` by the original RoBERTa (None: the package has none).
    bert: Callable[[Sentence], np.ndarray] | None = None
    #: The fastText model of the language segmentation (None: the lite one).
    langdetect: Path | None = None

    def __call__(self, name: str, voice: VoiceSource) -> dict[str, np.ndarray]:
        """The prompt arrays of one voice (empty for a voice given as a recording only)."""
        if voice.transcript is not None:
            if self.codes is None:
                raise TtsoptError(f"voice {name}: a transcript needs HuBERT to turn the recording into prompt tokens: {HUBERT_HINT}")
            sentence = transcript_phones(voice.transcript, voice.lang or "", self.table.symbols, self.table.version,
                                         self.g2pw, langdetect=self.langdetect)
            arrays = {f"{name}/prompt_tokens": self.codes(voice.recording),
                      f"{name}/prompt_phonemes": self.table.ids(" ".join(sentence.phones))}
            if self.bert is not None and sentence.is_chinese:
                arrays[f"{name}/prompt_bert"] = self.bert(sentence)
            return arrays
        if voice.prompt_tokens is None:
            return {}
        tokens = read_int_array(voice.prompt_tokens, "prompt tokens")
        if tokens.min() < 0 or tokens.max() >= self.codebook_size:
            raise TtsoptError(f"voice {name}: prompt tokens must lie in 0..{self.codebook_size - 1}")
        return {f"{name}/prompt_tokens": tokens, f"{name}/prompt_phonemes": self.table.ids(voice.prompt_phonemes or "")}


def voices_runtime(sources: ExportSources) -> dict[str, dict]:
    """``runtime["voices"]``: each stored voice's recording, whether it prompts the GPT, and its transcript."""
    return {name: {"source": str(v.recording.resolve()), "prompt": v.prompt_tokens is not None or v.transcript is not None}
            | ({"transcript": v.transcript, "lang": v.lang} if v.transcript is not None else {})
            for name, v in sources.voices.items()}


__all__ = ["HUBERT_HINT", "VOICE_NAME", "VoicePrompts", "check_voice_name", "voices_runtime"]
