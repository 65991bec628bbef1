"""``ttsopt run``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ttsopt.cli._common import LANG_HELP, command, err, out
from ttsopt.errors import TtsoptError
from ttsopt.runtime.streaming import StreamSettings
from ttsopt.runtime.threads import share_thread_pool


def _schedule(cuts: int = 4) -> str:
    """Where the default settings cut pieces ("16, 48, 144, 432"): the help text says what the runtime does."""
    settings, at = StreamSettings(), [StreamSettings.first_tokens]
    while len(at) < cuts:
        at.append(at[-1] + max(settings.chunk_tokens, int(settings.growth * at[-1])))
    return ", ".join(map(str, at)) + ", ..."


@command
def run(
    package: Annotated[Path, typer.Argument(help="Package directory.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Audio file to write; its extension picks the format "
                                                                 "(.wav, .flac, .ogg, .opus, .mp3, ...).")],
    wav: Annotated[Path | None, typer.Option("--wav", help="Vocoder: copy synthesis, recording → mel → vocoder.")] = None,
    mel: Annotated[Path | None, typer.Option("--mel", help="Vocoder: log-mel spectrogram .npy, [n_mels, frames].")] = None,
    tokens: Annotated[Path | None, typer.Option("--tokens", help="SoVITS: semantic tokens .npy (int, 25 Hz, EOS removed).")] = None,
    phonemes: Annotated[str | None, typer.Option("--phonemes", help='SoVITS: target phonemes, space-separated ("n i2 h ao3 .").')] = None,
    text: Annotated[str | None, typer.Option("--text", help="TTS: the text to speak (cut into sentences, each synthesised).")] = None,
    lang: Annotated[str | None, typer.Option("--lang", help="TTS: " + LANG_HELP)] = None,
    cut: Annotated[str, typer.Option("--cut", help="TTS: sentence cutting, official cut0..cut5 (cut5: at every mark).")] = "cut5",
    voice: Annotated[str | None, typer.Option("--voice", help="SoVITS: a voice stored in the package, or a NAME.voice file (ttsopt voice).")] = None,
    reference: Annotated[list[Path] | None, typer.Option(
        "--reference", help="SoVITS: reference recording(s) of 3-10 s instead of a stored voice.")] = None,
    reference_text: Annotated[str | None, typer.Option("--reference-text", help="TTS: what is said in --reference: the voice "
                                                       "prompts the GPT, as `ttsopt voice` makes it (needs --hubert at export).")] = None,
    reference_lang: Annotated[str | None, typer.Option("--reference-lang", help="TTS: language of --reference-text.")] = None,
    noise_scale: Annotated[float, typer.Option("--noise-scale", help="SoVITS: prior temperature (official default 0.5).")] = 0.5,
    speed: Annotated[float, typer.Option("--speed", help="SoVITS: speaking rate (> 1 is faster).")] = 1.0,
    seed: Annotated[int | None, typer.Option("--seed", help="SoVITS/TTS: seed of the noise and the GPT's sampling "
                                                             "(-1 or none: random, as api_v2's -1).")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="v4: Euler steps of the mel generator, 4/8/16/32 (default 8).")] = None,
    bert: Annotated[Path | None, typer.Option("--bert", help="TTS: BERT features .npy [1024, phonemes] (default zeros).")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="TTS: keep the k most likely tokens (default: the GPT's config).")] = None,
    top_p: Annotated[float, typer.Option("--top-p", help="TTS: nucleus sampling threshold (1 = off).")] = 1.0,
    temperature: Annotated[float, typer.Option("--temperature", help="TTS: sampling temperature.")] = 1.0,
    repetition_penalty: Annotated[float, typer.Option("--repetition-penalty", help="TTS: official default 1.35.")] = 1.35,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="TTS: most semantic tokens to generate (25 per second).")] = 1500,
    stream: Annotated[bool, typer.Option("--stream", help="TTS: write audio pieces as the GPT generates them; reports first-audio time.")] = False,
    first_tokens: Annotated[int | None, typer.Option(
        "--first-tokens", help=f"TTS --stream: tokens before the first piece (default {StreamSettings.first_tokens}).")] = None,
    chunk_tokens: Annotated[int | None, typer.Option(
        "--chunk-tokens", help=f"TTS --stream: fewest tokens per later piece; pieces grow with the tokens so far "
                               f"(default {StreamSettings.chunk_tokens}: cuts at {_schedule()} tokens).")] = None,
) -> None:
    """Synthesise audio with a package (no torch needed)."""
    share_thread_pool()  # runtime-only command: every session may share one pool
    import time

    from ttsopt.audio.io import audio_format, check_audio_output, write_audio
    from ttsopt.runtime import SynthesisRequest, Synthesizer, TextToSpeech, load
    from ttsopt.runtime.arrays import read_npy
    from ttsopt.runtime.sampling import SamplingParams, resolve_seed
    from ttsopt.runtime.sovits import check_reference_file

    audio_format(output)  # a name with no format is refused before the package is even loaded
    seed = resolve_seed(seed)
    settings = StreamSettings(**{name: value for name, value in (("first_tokens", first_tokens), ("chunk_tokens", chunk_tokens))
                                 if value is not None})
    if steps is not None:
        from ttsopt.runtime.cfm import check_steps

        check_steps(steps)
    for recording in reference or []:
        check_reference_file(recording)  # the official 3-10 s
    model = load(package)
    check_audio_output(output, model.sample_rate)  # format at this rate, and the place: before any synthesis
    start = time.perf_counter()
    if steps is not None and not hasattr(model, "default_steps"):
        raise TtsoptError("--steps is for GPT-SoVITS v4 packages (their CFM mel generator); this package has none")
    if stream and not isinstance(model, TextToSpeech):
        raise TtsoptError("--stream is for text-to-speech packages (GPT + SoVITS): this package has no GPT")
    if isinstance(model, Synthesizer):
        if wav is not None or mel is not None:
            raise TtsoptError("--wav/--mel are for vocoder packages; a GPT-SoVITS package takes --phonemes (and --tokens)")
        if text is not None or lang is not None:
            if not isinstance(model, TextToSpeech):
                raise TtsoptError("--text/--lang need a text-to-speech package (exported with --gpt); this one takes --tokens and --phonemes")
            if text is None or lang is None or phonemes is not None or tokens is not None or bert is not None:
                raise TtsoptError("give --text with --lang (and no --phonemes, --tokens or --bert)")
        elif phonemes is None or (tokens is None and not isinstance(model, TextToSpeech)):
            raise TtsoptError("a SoVITS package needs --tokens tokens.npy and --phonemes \"...\"" if not isinstance(model, TextToSpeech)
                              else "give the text to speak as --text \"...\" --lang LANG, or as --phonemes \"...\"")
        if voice is not None and reference:
            raise TtsoptError("give --voice or --reference, not both")
        semantic = read_npy(tokens, "semantic tokens") if tokens is not None else None
        features = read_npy(bert, "BERT features") if bert is not None else None
        start = time.perf_counter()
        ge = _voice(model, voice, reference or [], reference_text, reference_lang)
        if semantic is not None:
            extra = {} if steps is None else {"steps": steps}
            audio = model.synthesize(semantic, phonemes, ge, noise_scale=noise_scale, speed=speed, seed=seed, **extra)
        else:
            sampling = SamplingParams(top_k=top_k or model.gpt.default_top_k, top_p=top_p, temperature=temperature,
                                      repetition_penalty=repetition_penalty, max_new_tokens=max_tokens, seed=seed)
            request = SynthesisRequest(text=text, lang=lang, cut=cut, phonemes=phonemes, bert=features, voice=ge,
                                       sampling=sampling, noise_scale=noise_scale, speed=speed, stream=settings, steps=steps)
            if text is not None:
                front_start = time.perf_counter()
                request = model.sentences(request)
                err.print(f"text: {len(request.sentences)} sentence(s), front end "
                          f"{(time.perf_counter() - front_start) * 1000:.0f} ms", highlight=False)
            if stream:
                _stream_to_file(model, output, request)
                return
            audio, results = model.speak(request)
            results = results if isinstance(results, list) else [results]
            stops = ", ".join(sorted({r.stop_reason for r in results}))
            err.print(f"GPT: {sum(r.tokens.size for r in results)} semantic tokens, stopped by {stops}", highlight=False)
    else:
        if tokens is not None or phonemes is not None or text is not None or voice is not None or reference or reference_text:
            raise TtsoptError("--tokens/--phonemes/--text/--voice/--reference are for GPT-SoVITS packages; a vocoder takes --wav or --mel")
        if (wav is None) == (mel is None):
            raise TtsoptError("give exactly one of --wav or --mel")
        spectrogram = model.mel_from_wav(wav) if wav is not None else read_npy(mel, "mel")
        start = time.perf_counter()
        audio = model.vocode(spectrogram)
    elapsed = time.perf_counter() - start
    write_audio(output, audio, model.sample_rate)
    seconds = len(audio) / model.sample_rate
    out.print(f"[green]wrote[/] {output}  ({seconds:.2f} s at {model.sample_rate} Hz in {elapsed:.2f} s, RTF {elapsed / seconds:.3f})")


def _voice(model, voice: str | None, references: list[Path], text: str | None, lang: str | None):
    """What ``--voice`` / ``--reference`` name: a stored voice's name, a ``.voice`` file, a :class:`Voice` made now from
    a recording and its transcript, or the ``ge`` of recordings (reference-free)."""
    from ttsopt.runtime import TextToSpeech
    from ttsopt.runtime.voice import SUFFIX, Voice

    if (text is None) != (lang is None):
        raise TtsoptError("--reference-text and --reference-lang go together: give both (with one --reference)")
    if text is not None:
        if not isinstance(model, TextToSpeech):
            raise TtsoptError("--reference-text prompts the GPT: it needs a text-to-speech package (exported with --gpt)")
        if len(references) != 1:
            raise TtsoptError("--reference-text needs exactly one --reference recording (the one it transcribes)")
        return Voice.from_recording(model, references[0], text, lang)
    if references:
        return model.voice_embedding(references)
    if voice is not None and voice.endswith(SUFFIX):
        if not isinstance(model, TextToSpeech):
            raise TtsoptError("a .voice file prompts the GPT: it needs a text-to-speech package (exported with --gpt)")
        return Voice.load(voice, model)
    return voice


def _stream_to_file(model, output: Path, request) -> None:
    """Write each piece to ``output`` as it arrives (soundfile fixes the WAV header's sizes on close),
    so a player following the file, or a pipe reader, gets audio before the GPT is done; a text's sentences
    one after the other, each followed by the sentence pause (every sentence checked before anything is written)."""
    import time

    import numpy as np
    import soundfile

    from ttsopt.audio.io import audio_format

    speech = model.stream(request)
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        fmt, subtype = audio_format(output)
        with soundfile.SoundFile(str(output), "w", samplerate=model.sample_rate, channels=1, format=fmt, subtype=subtype) as sink:
            for piece in speech:
                sink.write(np.clip(piece, -1.0, 1.0))
                sink.flush()
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    elapsed = time.perf_counter() - start
    stats = speech.stats
    model.report_stops(stats.results, request.sampling)
    seconds = stats.samples / model.sample_rate
    stops = ", ".join(sorted({result.stop_reason for result in stats.results}))
    err.print(f"GPT: {stats.tokens.size} semantic tokens in {len(stats.results)} sentence(s), stopped by {stops}", highlight=False)
    out.print(f"[green]wrote[/] {output}  ({seconds:.2f} s at {model.sample_rate} Hz in {elapsed:.2f} s, RTF {elapsed / seconds:.3f}; "
              f"streamed in {stats.pieces} pieces, first audio after {stats.first_audio_s * 1000:.0f} ms)")
