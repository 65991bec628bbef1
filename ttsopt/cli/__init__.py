"""The ``ttsopt`` command line: a thin layer over the compiler, verify, runtime and bench APIs.

One module per subcommand; importing a module registers its command on ``app`` (in this order in ``--help``).
"""

from __future__ import annotations

from ttsopt.cli import bench, build, export, inspect, phonemize, prune, quantize, run, serve, verify, voice  # noqa: F401  (registers the commands)
from ttsopt.cli._common import app


def main() -> None:
    app()
