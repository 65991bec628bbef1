"""Text-to-speech with a GPT-SoVITS package: phonemes + a voice → semantic tokens (GPT) → speech (SoVITS).

    >>> tts = ttsopt.runtime.load("build/gpt-sovits-cpu")
    >>> audio, result = tts.speak(SynthesisRequest(phonemes="h ao3 .", voice="alice", sampling=SamplingParams(seed=0)))

What to synthesise is one :class:`~ttsopt.runtime.request.SynthesisRequest` (text or phonemes, voice, sampling,
noise scale, speed, streaming settings): :meth:`TextToSpeech.speak` and :meth:`TextToSpeech.stream` take it.

A stored voice with a prompt (what was said in its recording: semantic tokens and phonemes) conditions
the GPT on it, as the official inference does; a voice without one, or a recording given at run time,
runs the GPT reference-free (text only). Phonemes given as a string get zero BERT features (what the
official code uses for non-Chinese text) unless ``bert`` (``[1024, phonemes]`` of the target text, or of
prompt + target) is given; a :class:`~ttsopt.runtime.text.Sentence` (what the text front end makes) gets
the official features: RoBERTa's for its Chinese segments when the package has the ``bert`` graph
(:mod:`ttsopt.runtime.bert`), zeros for the rest.

Text goes in as ``SynthesisRequest(text=..., lang=...)`` (``lang``: an official mode, ``zh``, ``all_zh``, ``auto``, ...;
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
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ttsopt.errors import TtsoptError
from ttsopt.runtime.bert import BERT_GRAPH, BertFeatures, is_chinese
from ttsopt.runtime.gpt import GPT
from ttsopt.runtime.package import Package
from ttsopt.runtime.request import SynthesisRequest
from ttsopt.runtime.sampling import GenerationResult, SamplingParams, StopFn
from ttsopt.runtime.sovits import Synthesizer, latent_frames
from ttsopt.runtime.streaming import FrameNoise, StreamStats, stream_pieces
from ttsopt.runtime.text import Sentence, package_langdetect, phonemize
from ttsopt.runtime.text.cutting import DEFAULT_METHOD
from ttsopt.runtime.text.g2pw import package_g2pw
from ttsopt.runtime.voice import Voice

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

    def _gpt_inputs(self, request: SynthesisRequest) -> GptInputs:
        """The GPT's inputs of a one-utterance request (``phonemes`` set), checked before anything runs."""
        phonemes, bert = self._utterance(request.phonemes, request.bert)
        ids = self.phoneme_ids(phonemes)
        voice = request.voice if request.voice is not None else self._default_voice_name()
        prompt_tokens, prompt_ids = self.prompt(voice)
        if request.sampling.max_new_tokens > self.max_tokens:
            raise TtsoptError(f"max new tokens {request.sampling.max_new_tokens} exceeds what the SoVITS graphs take ({self.max_tokens})")
        # The transcript's BERT features: a Voice's, or a stored voice's (made at export from its transcript).
        prompt_bert = voice.prompt_bert if isinstance(voice, Voice) else self.voice_data.get(f"{voice}/prompt_bert")
        return GptInputs(ids, np.concatenate((prompt_ids, ids)), self._bert(bert, prompt_ids.size, ids.size, prompt_bert),
                         prompt_tokens)

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

    def semantic_tokens(self, request: SynthesisRequest, stop: StopFn | None = None) -> GenerationResult:
        """The GPT's tokens for a one-utterance request (EOS removed), continuing the voice's prompt."""
        inputs = self._gpt_inputs(self._one(request))
        return self.gpt.generate(inputs.all_ids, inputs.features, inputs.prompt_tokens, request.sampling, stop=stop)

    def _default_voice_name(self) -> str | None:
        return next(iter(self.voices)) if len(self.voices) == 1 else None

    def phonemize(self, text: str, lang: str, cut: str = DEFAULT_METHOD) -> list[Sentence]:
        """The sentences of ``text`` with their phones in this package's symbol table (see :func:`phonemize`),
        segmented with the package's language identifier (the official ``lid.176.bin`` when it was exported with it)."""
        return phonemize(text, lang, self.phonemes.symbols, self.phonemes.version, cut, self.g2pw,
                         langdetect=package_langdetect(self.package))

    def sentences(self, request: SynthesisRequest) -> SynthesisRequest:
        """``request`` with its text cut into the front end's sentences (a request without text as it is)."""
        if request.text is None:
            return request
        return request.replace(sentences=tuple(self.phonemize(request.text, request.lang, request.cut)))

    @staticmethod
    def _one(request: SynthesisRequest) -> SynthesisRequest:
        if request.phonemes is None:
            raise TtsoptError("this call takes one utterance: give the request phonemes (or use speak/stream for text)")
        return request

    def speak(self, request: SynthesisRequest, stop: StopFn | None = None
              ) -> tuple[np.ndarray, GenerationResult | list[GenerationResult]]:
        """Waveform at :attr:`sample_rate` and the GPT's result; the request's seed also seeds the SoVITS noise
        (drawn frame by frame, as :meth:`stream` draws it: same seed and tokens, same noise). ``stop()``, checked
        at every token, cancels (:class:`~ttsopt.runtime.sampling.Cancelled`).

        A request with ``phonemes`` is one utterance (the result is its GPT result); one with ``text`` (cut into
        sentences) or ``sentences`` gives each sentence synthesised on its own, peaks above 1 normalised, joined with
        ``pause_s`` of silence, and the list of per-sentence GPT results.
        """
        if request.phonemes is not None:
            audio, result = self._speak_one(request, stop)
            self.report_stops([result], request.sampling)
            return audio, result
        request = self.sentences(request)
        pause = np.zeros(int(request.pause_s * self.sample_rate), np.float32)
        pieces, results = [], []
        for sentence in request.sentences:
            audio, result = self._speak_one(request.replace(phonemes=sentence), stop)
            peak = float(np.max(np.abs(audio))) if audio.size else 0.0
            pieces += [audio / peak if peak > 1 else audio, pause]
            results.append(result)
        self.report_stops(results, request.sampling)
        return np.concatenate(pieces).astype(np.float32), results

    def _speak_one(self, request: SynthesisRequest, stop: StopFn | None) -> tuple[np.ndarray, GenerationResult]:
        """One utterance, unreported (``speak`` reports a text's cut-offs once)."""
        ge = self._ge(request.voice)  # fails early, before the GPT runs, on an unknown voice
        inputs = self._gpt_inputs(request)
        result = self.gpt.generate(inputs.all_ids, inputs.features, inputs.prompt_tokens, request.sampling, stop=stop)
        if result.tokens.size == 0:
            raise TtsoptError("the GPT produced no semantic tokens for this text: check the phonemes")
        noise = FrameNoise(self.inter_channels, request.seed)(latent_frames(result.tokens.size, request.speed))
        audio = self.synthesize(result.tokens, inputs.ids, ge, noise_scale=request.noise_scale, speed=request.speed, noise=noise)
        return audio, result

    def stream(self, request: SynthesisRequest, stop: StopFn | None = None) -> SpeechStream:
        """Audio pieces while the GPT generates (see :mod:`ttsopt.runtime.streaming`), cut as ``request.stream``
        says; a text's sentences one after the other, each followed by ``pause_s`` of silence (as :meth:`speak`). Every utterance is
        checked now; the work runs as the returned stream is iterated (``stream.stats`` has first-audio time and the
        GPT results as they finish, and :meth:`report_stops` of them says whether the GPT was cut off); closing the
        iterator early stops the GPT. A :class:`Sentence` brings its BERT features, computed when its GPT starts."""
        request = self.sentences(request)
        utterances = [request.replace(phonemes=u) if request.sentences is not None else request for u in request.utterances()]
        pause_s = request.pause_s if request.sentences is not None else 0.0  # phonemes: one utterance, no pause (as speak)
        return SpeechStream(self, [self._stream_utterance(u, stop) for u in utterances], pause_s)

    def _stream_utterance(self, request: SynthesisRequest, stop: StopFn | None) -> Callable[[], UtterancePieces]:
        """One utterance's pieces, checked now and made when called (so a text's later sentences start their GPT in turn)."""
        ge = self._ge(request.voice)
        inputs = self._gpt_inputs(request)

        def pieces() -> UtterancePieces:
            tokens = self.gpt.tokens(inputs.all_ids, inputs.features, inputs.prompt_tokens, request.sampling, stop=stop)
            return stream_pieces(self, tokens, inputs.ids, ge, FrameNoise(self.inter_channels, request.seed),
                                 request.noise_scale, request.speed, request.stream)

        return pieces


#: One utterance's streamed pieces, then its GPT result.
UtterancePieces = Generator[np.ndarray, None, GenerationResult]


@dataclass(frozen=True)
class GptInputs:
    """What the GPT takes for one utterance: the target phoneme ids, prompt + target ids, BERT features (None: zeros;
    a callable: made when the GPT starts) and the voice's prompt tokens (None: reference-free)."""

    ids: np.ndarray
    all_ids: np.ndarray
    features: Features
    prompt_tokens: np.ndarray | None


class SpeechStream:
    """An iterable of float32 pieces at the package's sample rate, utterance after utterance, each followed by the
    pause (as :meth:`TextToSpeech.speak` joins them: whole and streamed audio have the same length); :attr:`stats`
    fills in as it runs."""

    def __init__(self, tts: TextToSpeech, utterances: list[Callable[[], UtterancePieces]], pause_s: float):
        self.sample_rate = tts.sample_rate
        self.stats = StreamStats()
        self._pause = np.zeros(int(pause_s * tts.sample_rate), np.float32)
        self._pieces = self._run(utterances)

    def _run(self, utterances: list[Callable[[], UtterancePieces]]) -> Iterator[np.ndarray]:
        for make in utterances:
            pieces = make()
            while True:
                try:
                    piece = next(pieces)
                except StopIteration as done:
                    self.stats.results.append(done.value)
                    break
                yield self.stats.count(piece)
            if self._pause.size:  # after every sentence, the last too: what speak() returns, as the official API does
                self.stats.samples += self._pause.size
                yield self._pause

    def __iter__(self) -> Iterator[np.ndarray]:
        self.stats.started = time.perf_counter()
        yield from self._pieces

    def close(self) -> None:
        """Stop generating (the GPT stops at its next token)."""
        self._pieces.close()
