"""Model families: each is a folder with its model, loader, export spec and a :class:`Family` object.

Adding a family means adding its folder and one line to :data:`FAMILIES`.
"""

from __future__ import annotations

import importlib

from ttsopt.errors import TtsoptError
from ttsopt.families.contract import Family

#: family name -> "module:attribute" of its :class:`Family` (imported on first use: torch-free).
FAMILIES = {
    "hifigan": "ttsopt.families.hifigan.family:FAMILY",
    "gpt_sovits": "ttsopt.families.gpt_sovits.family:FAMILY",
}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise TtsoptError(f"model family {name!r} is not known to this ttsopt: upgrade ttsopt")
    module, _, attribute = FAMILIES[name].partition(":")
    return getattr(importlib.import_module(module), attribute)


def family_for_checkpoints(roles: set[str]) -> Family:
    """The one family that takes the checkpoint ``roles`` the user gave (``ttsopt export``)."""
    families = [get_family(name) for name in FAMILIES]
    matching = [family for family in families if roles & set(family.roles)]
    if len(matching) != 1 or roles - set(matching[0].roles):
        raise TtsoptError(f"give {' or '.join(f.usage for f in families)}, not both or neither")
    matching[0].check_roles(roles)
    return matching[0]


__all__ = ["FAMILIES", "Family", "family_for_checkpoints", "get_family"]
