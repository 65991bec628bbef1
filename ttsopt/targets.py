"""Target profiles (``configs/<name>.yaml``): the single source of per-target settings.

The profile is resolved once, at export, and copied into the package manifest; the runtime and
``verify`` read it from there, so a package keeps behaving as it was verified even if the YAML files
change later.
"""

from __future__ import annotations

from pathlib import Path

from ttsopt.errors import TtsoptError


def config_dir() -> Path:
    """``configs/`` of a source checkout, or the copy installed inside the package (wheel builds)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parent / "configs"):
        if candidate.is_dir():
            return candidate
    raise TtsoptError("ttsopt's target profiles (configs/*.yaml) are missing: reinstall ttsopt")


def available_targets() -> list[str]:
    return sorted(path.stem for path in config_dir().glob("*.yaml"))


def load_target(name: str) -> dict:
    """The profile of target ``name`` as a plain dict (validated enough to fail early and clearly)."""
    import yaml

    path = config_dir() / f"{name}.yaml"
    if not path.is_file():
        raise TtsoptError(f"unknown target {name!r}: choose one of {', '.join(available_targets())}")
    profile = yaml.safe_load(path.read_text())
    for key in ("name", "precision", "precisions", "runtime", "gates"):
        if key not in profile:
            raise TtsoptError(f"target profile {path} has no {key!r}: restore it from the ttsopt repository")
    return profile


def resolve_precision(profile: dict, precision: str | None) -> str:
    """The precision to build: the user's choice or the target's default, if ttsopt can build it."""
    precision = precision or profile["precision"]
    if precision not in profile["precisions"]:
        buildable = ", ".join(profile["precisions"]) or "none yet"
        raise TtsoptError(
            f"precision {precision} for target {profile['name']} is not implemented yet "
            f"(buildable for {profile['name']}: {buildable}): use --target cpu for an FP32 package")
    if precision not in profile["gates"]:
        raise TtsoptError(f"target profile {profile['name']} has no quality gates for {precision}: add them")
    return precision
