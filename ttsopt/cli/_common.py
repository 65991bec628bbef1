"""What every ``ttsopt`` subcommand shares: the typer app, the consoles, and the error-to-exit-code wrapper.

Errors the user can fix are printed as one line (``error: what is wrong: what to do``) with exit
status 2; a failed quality gate exits with 1; progress goes to stderr so ``--json`` output on stdout
stays machine-readable.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable

import typer
from rich.console import Console
from rich.markup import escape

from ttsopt.errors import QualityGateError, TtsoptError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Export, optimise, verify and run neural TTS models (HiFi-GAN, GPT-SoVITS).")
out = Console()
err = Console(stderr=True)


class _NoteHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        err.print(f"[yellow]note:[/] {escape(record.getMessage())}", highlight=False, soft_wrap=True)


def _setup_logging() -> None:
    logger = logging.getLogger("ttsopt")
    if not any(isinstance(h, _NoteHandler) for h in logger.handlers):
        logger.addHandler(_NoteHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False


#: Optional dependencies → the extra that installs them (pyproject.toml): a runtime-only install that runs a
#: build command gets this line instead of a traceback.
_EXTRAS = {"torch": "build", "onnx": "build", "onnxscript": "build", "onnxslim": "build"}


def command(fn: Callable) -> Callable:
    """Register ``fn`` as a subcommand whose user errors become one line and an exit status."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _setup_logging()
        try:
            return fn(*args, **kwargs)
        except QualityGateError as exc:
            err.print(f"[red]failed:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except TtsoptError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except ModuleNotFoundError as exc:
            extra = _EXTRAS.get((exc.name or "").partition(".")[0])
            if extra is None:
                raise
            message = f"ttsopt {fn.__name__} needs {exc.name}, which is not installed: pip install 'ttsopt[{extra}]'"
            err.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]: nothing was written")
            raise typer.Exit(130) from None

    return app.command()(wrapper)


def fmt(value: float, digits: int = 4) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isinf(value):
        return "∞ (exact)" if value > 0 else "-∞"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}"


def spinner(message: str):
    return err.status(message, spinner="dots")




#: ``--lang`` of text: the official GPT-SoVITS language modes.
LANG_HELP = ("Language mode (official): zh ja ko yue (segmented, English in them read as English), all_zh all_ja all_ko "
             "all_yue (everything but English in that language), en, auto (each run in its detected language), auto_yue; "
             "v1 models: zh ja en all_zh all_ja auto.")
