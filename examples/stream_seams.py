"""Measure streaming against whole-utterance synthesis (same tokens, same noise): log-mel L1 and SNR
for a grid of hold-back (lookahead) and crossfade frames, and first-audio time per setting.

    python examples/stream_seams.py build/real-tts-int8 --tokens 100
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

import ttsopt.runtime
from ttsopt.audio.mel import MelSettings
from ttsopt.audio.metrics import logmel_l1, snr_db
from ttsopt.runtime import SynthesisRequest
from ttsopt.runtime.sampling import SamplingParams
from ttsopt.runtime.streaming import StreamSettings

PHONEMES = "j in1 t ian1 t ian1 q i4 h en3 h ao3 , w o3 m en5 q v4 g ong1 y van2 b a5 ."


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("package")
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--lookahead", default="0,4,8,12,16")
    parser.add_argument("--crossfade", default="0,1,2,4")
    parser.add_argument("--first", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=24)
    parser.add_argument("--growth", type=float, default=0.5)
    args = parser.parse_args()
    ttsopt.runtime.share_thread_pool()
    tts = ttsopt.runtime.load(args.package)
    voice = next(iter(tts.voices))
    params = SamplingParams(top_k=tts.gpt.default_top_k, seed=0, max_new_tokens=args.tokens, eos_suppress_steps=args.tokens)
    start = time.perf_counter()
    request = SynthesisRequest(phonemes=PHONEMES, voice=voice, sampling=params)
    whole, result = tts.speak(request)
    print(f"whole utterance RTF {(time.perf_counter() - start) / (whole.size / tts.sample_rate):.3f}")
    mel = MelSettings(tts.sample_rate, 1024, 320, 1024, 80)
    print(f"{result.tokens.size} tokens, {whole.size / tts.sample_rate:.2f} s")
    for look, fade in itertools.product(map(int, args.lookahead.split(",")), map(int, args.crossfade.split(","))):
        settings = StreamSettings(args.first, args.chunk, look, fade, args.growth)
        stream = tts.stream(request.replace(stream=settings))
        start = time.perf_counter()
        audio = np.concatenate(list(stream))
        elapsed = time.perf_counter() - start
        assert audio.size == whole.size, (audio.size, whole.size)
        print(f"lookahead {look:2d} crossfade {fade}: log-mel L1 {logmel_l1(whole, audio, mel):.4f}  SNR {snr_db(whole, audio):6.2f} dB  "
              f"first audio {stream.stats.first_audio_s * 1000:.0f} ms  RTF {elapsed / (audio.size / tts.sample_rate):.3f}  "
              f"pieces {stream.stats.pieces}")


if __name__ == "__main__":
    main()
