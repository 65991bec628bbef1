"""Every ``ttsopt`` command written in the README and docs/ names a real subcommand and only options it has.

The commands themselves need the user's checkpoints, so they are not run here; what goes stale when the CLI
changes (a renamed option, a dropped command) is what this checks, for every command line in a code block.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main

from ttsopt.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"```[^\n]*\n(.*?)```", re.S)


def _command_lines(path: Path) -> list[str]:
    """``ttsopt …`` lines of the shell code blocks (continuations joined, comments dropped)."""
    lines = []
    for block in _BLOCK.findall(path.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            for part in re.split(r"&&|;", line.split("  #")[0]):
                part = part.strip()
                if part.startswith("ttsopt "):
                    lines.append(part)
    return lines


COMMANDS = [(path.relative_to(ROOT).as_posix(), line) for path in DOCS for line in _command_lines(path)]


def test_the_docs_have_commands() -> None:
    assert len(COMMANDS) >= 15 and {p for p, _ in COMMANDS} >= {"README.md"}


@pytest.mark.parametrize(("page", "line"), COMMANDS, ids=[f"{p}:{i}" for i, (p, _) in enumerate(COMMANDS)])
def test_documented_command_exists_with_its_options(page: str, line: str) -> None:
    group = typer.main.get_command(app)
    words = shlex.split(line)[1:]
    assert words and words[0] in group.commands, f"{page}: `{line}` names no ttsopt command"
    command = group.commands[words[0]]
    options = {opt for param in command.params if param.param_type_name == "option" for opt in param.opts + param.secondary_opts}
    for word in words[1:]:
        if word.startswith("-") and not re.fullmatch(r"-\d.*", word):
            assert word.split("=")[0] in options, f"{page}: `{line}`: ttsopt {words[0]} has no option {word}"
