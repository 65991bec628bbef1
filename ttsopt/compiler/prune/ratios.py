"""``--ratio``: one share of channels for every stage (``0.25``) or one per stage (``stage1=0.25,stage3=0.1``)."""

from __future__ import annotations

from collections.abc import Sequence

from ttsopt.errors import TtsoptError

#: Above this nothing of a layer is left worth refitting; a user who wants more is told so.
MAX_RATIO = 0.9


def _ratio(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TtsoptError(f"--ratio {what}: {text!r} is not a number: give a share of channels to remove, e.g. 0.25") from None
    if not 0.0 <= value <= MAX_RATIO:
        raise TtsoptError(f"--ratio {what}: {value:g} is out of range: give a share of channels in [0, {MAX_RATIO:g}]")
    return value


def parse_ratio(text: str, stages: Sequence[str]) -> dict[str, float]:
    """Stage name → share of its prunable channels to remove; stages not named keep all their channels."""
    text = text.strip()
    if "=" not in text:
        value = _ratio(text, text)
        ratios = dict.fromkeys(stages, value)
    else:
        ratios = dict.fromkeys(stages, 0.0)
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or name not in ratios:
                raise TtsoptError(f"--ratio {part!r}: unknown stage {name!r}: this model's stages are {', '.join(stages)} "
                                  f"(e.g. --ratio {stages[0]}=0.25)")
            ratios[name] = _ratio(value.strip(), part)
    if not any(ratios.values()):
        raise TtsoptError(f"--ratio {text!r} removes nothing: give a share of channels above 0, e.g. 0.25")
    return ratios
