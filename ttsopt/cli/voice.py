"""``ttsopt voice``: a voice file from a reference recording and its transcript (no torch)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from ttsopt.cli._common import LANG_HELP, command, err, out
from ttsopt.errors import TtsoptError
from ttsopt.runtime.threads import share_thread_pool


@command
def voice(
    package: Annotated[Path, typer.Argument(help="A text-to-speech package exported with --hubert (or --pretrained).")],
    reference: Annotated[Path, typer.Option("--reference", help="The reference recording (3-10 s of speech).")],
    text: Annotated[str, typer.Option("--text", help="What is said in the recording (its transcript).")],
    lang: Annotated[str, typer.Option("--lang", help=LANG_HELP.replace("Language mode", "Language mode of the transcript", 1))],
    output: Annotated[Path, typer.Option("-o", "--output", help="Voice file to write (NAME.voice).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the prompt tokens and phones as JSON.")] = False,
) -> None:
    """Make a voice from a recording and its transcript: prompt tokens (HuBERT), the transcript's phones, the
    speaker embedding; written as a small file tied to this package's model (ttsopt run PKG --voice NAME.voice)."""
    share_thread_pool()
    from ttsopt.runtime import TextToSpeech, load
    from ttsopt.runtime.voice import SUFFIX, Voice

    if output.suffix != SUFFIX:
        raise TtsoptError(f"-o {output}: a voice file's name ends in {SUFFIX}: e.g. -o {output.with_suffix(SUFFIX).name}")
    model = load(package)
    if not isinstance(model, TextToSpeech):
        raise TtsoptError(f"{package} has no GPT: a voice prompts the GPT, so it needs a text-to-speech package (export with --gpt)")
    start = time.perf_counter()
    made = Voice.from_recording(model, reference, text, lang)
    elapsed = time.perf_counter() - start
    made.save(output)
    if as_json:
        print(json.dumps({"voice": str(output), "seconds_to_make": round(elapsed, 3), **made.describe()}, ensure_ascii=False))
        return
    err.print(f"prompt: {made.prompt_tokens.size} semantic tokens; transcript: {len(made.phones)} phones "
              f"({' '.join(made.phones)})", highlight=False)
    out.print(f"[green]wrote[/] {output}  ({made.seconds:.2f} s recording, made in {elapsed:.2f} s)")
