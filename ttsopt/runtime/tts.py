"""Text-to-speech with a GPT-SoVITS package: phonemes + a voice → semantic tokens (GPT) → speech (SoVITS).

    >>> tts = ttsopt.runtime.load("build/gpt-sovits-cpu")
    >>> audio, result = tts.speak("h ao3 .", voice="alice", params=SamplingParams(seed=0))

A stored voice with a prompt (what was said in its recording: semantic tokens and phonemes) conditions
the GPT on it, as the official inference does; a voice without one, or a recording given at run time,
runs the GPT reference-free (text only). Phonemes given as a string get zero BERT features (what the
official code uses for non-Chinese text) unless ``bert`` (``[1024, phonemes]`` of the target text, or of
prompt + target) is passed; a :class:`~ttsopt.runtime.text.Sentence` (what the text front end makes) gets
the official features: RoBERTa's for its Chinese segments when the package has the ``bert`` graph
(:mod:`ttsopt.runtime.bert`), zeros for the rest.

Text goes in with ``speak(text=..., lang=...)`` (``lang``: an official mode, ``zh``, ``all_zh``, ``auto``, ...;
segmented with the package's fastText model when it was exported with one): the text front end (:mod:`ttsopt.runtime.text`) cuts it
into sentences, each sentence is synthesised on its own (the GPT's token cap applies per sentence, so a
paragraph is never cut short) and the pieces are joined with 0.3 s of silence, as the official API does.
A package exported without RoBERTa (``--bert``/``--pretrained``) speaks Chinese with zero features too: a
quality loss against the official front end, said once per process.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.runtime.bert import BERT_GRAPH, BertFeatures, is_chinese
from ttsopt.runtime.gpt import GPT
from ttsopt.runtime.package import Package
from ttsopt.runtime.sampling import GenerationResult, SamplingParams, StopFn
from ttsopt.runtime.sovits import Synthesizer, check_synthesis, latent_frames
from ttsopt.runtime.streaming import FrameNoise, StreamSettings, StreamStats, stream_pieces
from ttsopt.runtime.text import Sentence, package_langdetect, phonemize
from ttsopt.runtime.text.cutting import DEFAULT_METHOD
from ttsopt.runtime.text.g2pw import package_g2pw
from ttsopt.runtime.voice import Voice

SENTENCE_PAUSE_S = 0.3  # the official fragment_interval
OFFICIAL_MAX_TOKENS = SamplingParams.max_new_tokens  # the official loop's 1500 iterations (60 s at 25 Hz)
#: BERT features ``[1, 1024, phonemes]``, or a callable making them when the GPT starts, or None (zeros).
Features = np.ndarray | Callable[[], np.ndarray] | None

log = logging.getLogger("ttsopt")
#: A stored voice's name, a :class:`Voice` (recording + transcript), a ``ge`` array (reference-free), or the default.
VoiceLike = str | np.ndarray | Voice | None


class TextToSpeech(Synthesizer):
    def __init__(self, package: Package):
        super().__init__(package)
        self.gpt = GPT(package)
        self.token_rate = int(self.settings["token_rate_hz"])  # the semantic rate, 25 Hz
        self.g2pw = package_g2pw(package.path, self.settings)  # v2 Mandarin polyphones; None: pypinyin reads them

    def prompt(self, voice: VoiceLike) -> tuple[np.ndarray | None, np.ndarray]:
        """(prompt semantic tokens, prompt phoneme ids) of a stored voice or a :class:`Voice`; (None, empty) for reference-free."""
        if isinstance(voice, Voice):
            return voice.prompt_tokens, voice.phone_ids
        if isinstance(voice, str) and f"{voice}/prompt_tokens" in self.voice_data:
            return self.voice_data[f"{voice}/prompt_tokens"], self.voice_data[f"{voice}/prompt_phonemes"]
        return None, np.zeros(0, np.int64)

    @functools.cached_property
    def bert(self) -> BertFeatures | None:
        """The package's RoBERTa (None when it was exported without one: Chinese then gets zero features)."""
        return BertFeatures(self.package) if BERT_GRAPH in self.manifest.graphs else None

    def bert_features(self, sentence: Sentence) -> np.ndarray:
        """``[1024, phones]`` of a sentence as the official ``get_phones_and_bert`` makes them: RoBERTa's features
        (``hidden_states[-3]``, per phone by ``word2ph``) for its Chinese segments, zeros for the others, and
        zeros throughout when the package has no ``bert`` graph. For a target sentence or a voice's transcript."""
        if self.bert is None or not any(is_chinese(s) for s in sentence.segments):
            return np.zeros((self.gpt.bert_dim, len(sentence.phones)), np.float32)
        return self.bert.segments(sentence.segments)

    _warned_zero_bert = False

    def _utterance(self, phonemes: str | np.ndarray | Sentence, bert: np.ndarray | None
                   ) -> tuple[str | np.ndarray, Features]:
        """(phonemes, BERT features) of what ``speak``/``stream`` were given: a sentence's own features (deferred)
        unless ``bert`` is given; None (zeros) for a sentence without Chinese."""
        if not isinstance(phonemes, Sentence):
            return phonemes, bert
        sentence = phonemes
        if bert is None and sentence.is_chinese:
            if self.bert is not None:  # computed when the GPT starts (a stream's later sentences wait their turn)
                bert = functools.partial(self.bert_features, sentence)
            elif not TextToSpeech._warned_zero_bert:
                log.warning("Chinese is spoken with zero BERT features (no BERT model in the package: export it with "
                            "--bert or --pretrained): expect flatter prosody than the official front end, which runs "
                            "chinese-roberta-wwm-ext-large")
                TextToSpeech._warned_zero_bert = True
        return " ".join(sentence.phones), bert

    def _bert(self, bert: Features, prompt_len: int, text_len: int, prompt_bert: np.ndarray | None = None) -> Features:
        """``[1, 1024, prompt + text]`` or None (zeros); the prompt's columns come from ``bert``, else the voice's
        ``prompt_bert``, else zeros. Deferred features (a callable) stay deferred."""
        if callable(bert):
            return lambda: self._bert(bert(), prompt_len, text_len, prompt_bert)
        if bert is None and prompt_bert is None:
            return None
        if bert is None:
            bert = np.zeros((self.gpt.bert_dim, text_len), np.float32)
        bert = np.asarray(bert, dtype=np.float32)
        bert = bert[0] if bert.ndim == 3 and bert.shape[0] == 1 else bert
        if bert.ndim != 2 or bert.shape[0] != self.gpt.bert_dim or bert.shape[1] not in (text_len, prompt_len + text_len):
            raise TtsoptError(f"BERT features must be [{self.gpt.bert_dim}, {text_len}] (target phonemes) or "
                              f"[{self.gpt.bert_dim}, {prompt_len + text_len}] (prompt + target), got {list(bert.shape)}")
        if bert.shape[1] == text_len and prompt_len:  # the prompt's columns: the voice's, else zeros (non-Chinese)
            prompt = (np.zeros((self.gpt.bert_dim, prompt_len), np.float32) if prompt_bert is None
                      else np.asarray(prompt_bert, np.float32).reshape(self.gpt.bert_dim, prompt_len))
            bert = np.concatenate((prompt, bert), axis=1)
        return bert[None]

    def _gpt_inputs(self, phonemes: str | np.ndarray, voice: VoiceLike, bert: Features,
                    params: SamplingParams) -> tuple[np.ndarray, np.ndarray, Features, np.ndarray | None]:
        """(target ids, prompt + target ids, BERT features, prompt tokens), checked before anything runs."""
        ids = self.phoneme_ids(phonemes)
        voice = voice if voice is not None else self._default_voice_name()
        prompt_tokens, prompt_ids = self.prompt(voice)
        if params.max_new_tokens > self.max_tokens:
            raise TtsoptError(f"max new tokens {params.max_new_tokens} exceeds what the SoVITS graphs take ({self.max_tokens})")
        # The transcript's BERT features: a Voice's, or a stored voice's (made at export from its transcript).
        prompt_bert = voice.prompt_bert if isinstance(voice, Voice) else self.voice_data.get(f"{voice}/prompt_bert")
        return ids, np.concatenate((prompt_ids, ids)), self._bert(bert, prompt_ids.size, ids.size, prompt_bert), prompt_tokens

    def report_stops(self, results: Sequence[GenerationResult], params: SamplingParams) -> None:
        """One warning per text (not per sentence) when the GPT was cut off: how many of its sentences, and the
        advice that fits the cap: below the official 1500 tokens it was the caller's cap (raise it), at or above
        it the GPT found no end (a sentence of a minute or more: split it)."""
        capped = [r for r in results if r.stop_reason == "max_new_tokens"]
        where = f"{len(capped)} of {len(results)} sentences" if len(results) > 1 else "the sentence"
        if capped:
            seconds = params.max_new_tokens / self.token_rate
            advice = (f"raise the token cap (--max-tokens / max_new_tokens; this package takes up to {self.max_tokens})"
                      if params.max_new_tokens < OFFICIAL_MAX_TOKENS else
                      "the GPT did not find the sentence's end: split it into shorter sentences, or try another seed")
            log.warning("the GPT reached the %d-token cap (%s s) without EOS in %s; that audio is cut there: %s",
                        params.max_new_tokens, f"{seconds:.3g}", where, advice)
        early = [r for r in results if r.stop_reason == "early_stop"]
        if early:
            log.warning("the GPT stopped at early_stop_num = %d tokens in %s", params.early_stop_num,
                        f"{len(early)} of {len(results)} sentences" if len(results) > 1 else "the sentence")

    def semantic_tokens(self, phonemes: str | np.ndarray, voice: VoiceLike = None,
                        bert: Features = None, params: SamplingParams | None = None,
                        stop: StopFn | None = None) -> GenerationResult:
        """The GPT's tokens for the target ``phonemes`` (EOS removed), continuing the voice's prompt."""
        params = params or SamplingParams()
        _, all_ids, features, prompt_tokens = self._gpt_inputs(phonemes, voice, bert, params)
        return self.gpt.generate(all_ids, features, prompt_tokens, params, stop=stop)

    def _default_voice_name(self) -> str | None:
        return next(iter(self.voices)) if len(self.voices) == 1 else None

    def phonemize(self, text: str, lang: str, cut: str = DEFAULT_METHOD) -> list[Sentence]:
        """The sentences of ``text`` with their phones in this package's symbol table (see :func:`phonemize`),
        segmented with the package's language identifier (the official ``lid.176.bin`` when it was exported with it)."""
        return phonemize(text, lang, self.phonemes.symbols, self.phonemes.version, cut, self.g2pw,
                         langdetect=package_langdetect(self.package))

    def speak(self, phonemes: str | np.ndarray | Sentence | None = None, voice: VoiceLike = None, bert: np.ndarray | None = None,
              params: SamplingParams | None = None, noise_scale: float = 0.5, speed: float = 1.0,
              stop: StopFn | None = None, *, text: str | None = None, lang: str | None = None, cut: str = DEFAULT_METHOD
              ) -> tuple[np.ndarray, GenerationResult | list[GenerationResult]]:
        """Waveform at :attr:`sample_rate` and the GPT's result; ``params.seed`` also seeds the SoVITS noise
        (drawn frame by frame, as :meth:`stream` draws it: same seed and tokens, same noise).

        Give either ``phonemes`` (one utterance: a phoneme string, ids, or a front-end :class:`Sentence`, which
        brings its BERT features) or ``text`` and ``lang`` (cut into sentences; the result is then the list of
        per-sentence GPT results).
        """
        if (phonemes is None) == (text is None):
            raise TtsoptError("give either phonemes or text (with lang) to speak")
        if text is not None:
            if lang is None:
                raise TtsoptError("text needs its language: pass lang='en', 'zh', 'ja', 'ko', 'yue', 'all_zh', ... or 'auto'")
            if bert is not None:
                raise TtsoptError("bert features go with phonemes; text gets its own (RoBERTa's for Chinese, when the "
                                  "package has it)")
            return self.speak_sentences(self.phonemize(text, lang, cut), voice, params, noise_scale, speed, stop)
        params = params or SamplingParams()
        audio, result = self._speak_one(phonemes, voice, bert, params, noise_scale, speed, stop)
        self.report_stops([result], params)
        return audio, result

    def _speak_one(self, phonemes: str | np.ndarray | Sentence, voice: VoiceLike, bert: Features,
                   params: SamplingParams, noise_scale: float, speed: float, stop: StopFn | None
                   ) -> tuple[np.ndarray, GenerationResult]:
        """One utterance, unreported (``speak`` reports it; ``speak_sentences`` reports a text's cut-offs once)."""
        ge = self._ge(voice)  # fails early, before the GPT runs, on an unknown voice
        check_synthesis(speed, noise_scale)
        phonemes, bert = self._utterance(phonemes, bert)
        result = self.semantic_tokens(phonemes, voice, bert, params, stop=stop)
        if result.tokens.size == 0:
            raise TtsoptError("the GPT produced no semantic tokens for this text: check the phonemes")
        noise = FrameNoise(self.inter_channels, params.seed)(latent_frames(result.tokens.size, speed))
        audio = self.synthesize(result.tokens, phonemes, ge, noise_scale=noise_scale, speed=speed, noise=noise)
        return audio, result

    def speak_sentences(self, sentences: list[Sentence], voice: VoiceLike = None,
                        params: SamplingParams | None = None, noise_scale: float = 0.5, speed: float = 1.0,
                        stop: StopFn | None = None) -> tuple[np.ndarray, list[GenerationResult]]:
        """Each sentence synthesised on its own (with its BERT features), peaks above 1 normalised, joined with 0.3 s pauses."""
        params = params or SamplingParams()
        pause = np.zeros(int(SENTENCE_PAUSE_S * self.sample_rate), np.float32)
        pieces, results = [], []
        for sentence in sentences:
            audio, result = self._speak_one(sentence, voice, None, params, noise_scale, speed, stop)
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            pieces += [audio / peak if peak > 1 else audio, pause]
            results.append(result)
        self.report_stops(results, params)
        return np.concatenate(pieces).astype(np.float32), results

    def stream(self, phonemes: str | np.ndarray | Sentence, voice: VoiceLike = None, bert: np.ndarray | None = None,
               params: SamplingParams | None = None, noise_scale: float = 0.5, speed: float = 1.0,
               settings: StreamSettings | None = None, stop: StopFn | None = None) -> SpeechStream:
        """Audio pieces while the GPT generates (see :mod:`ttsopt.runtime.streaming`). Inputs are checked
        now; the work runs as the returned stream is iterated (``stream.stats`` has first-audio time and
        the GPT result once it is done, and :meth:`report_stops` of it says whether the GPT was cut off: a caller
        streaming a text sentence by sentence reports once for all of them); closing the iterator early stops the GPT.
        A :class:`Sentence` brings its BERT features, computed when the GPT starts."""
        params = params or SamplingParams()
        ge = self._ge(voice)
        check_synthesis(speed, noise_scale)
        phonemes, bert = self._utterance(phonemes, bert)
        ids, all_ids, features, prompt_tokens = self._gpt_inputs(phonemes, voice, bert, params)
        return SpeechStream(self, ids, all_ids, features, prompt_tokens, ge, params, noise_scale, speed,
                            settings or StreamSettings(), stop)


class SpeechStream:
    """An iterable of float32 pieces at the package's sample rate; :attr:`stats` fills in as it runs."""

    def __init__(self, tts: TextToSpeech, ids: np.ndarray, all_ids: np.ndarray, features: Features,
                 prompt_tokens: np.ndarray | None, ge: np.ndarray, params: SamplingParams, noise_scale: float,
                 speed: float, settings: StreamSettings, stop: StopFn | None):
        self.tts, self.params, self.sample_rate = tts, params, tts.sample_rate
        self.stats = StreamStats()
        tokens = tts.gpt.tokens(all_ids, features, prompt_tokens, params, stop=stop)
        self._pieces = stream_pieces(tts, tokens, ids, ge, FrameNoise(tts.inter_channels, params.seed), noise_scale,
                                     speed, settings, self.stats)

    def __iter__(self) -> Iterator[np.ndarray]:
        self.stats.started = time.perf_counter()
        yield from self._pieces

    def close(self) -> None:
        """Stop generating (the GPT stops at its next token)."""
        self._pieces.close()
