# The two README commands: `make demo` and `make test`. Both create .venv and install on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= .demo
# A tensorflow-cpu wheel on this machine's disk is used when present; elsewhere pip fetches one.
TF_WHEEL := $(firstword $(wildcard /opt/pypi/files/tensorflow_cpu-2.21*.whl))
TF_REQ := $(if $(TF_WHEEL),$(TF_WHEEL),tensorflow-cpu>=2.16)
PYTEST_ARGS ?=

.PHONY: install demo test lint clean

$(VENV)/.installed: setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q "$(TF_REQ)"
	$(PY) -m pip install -q --no-build-isolation -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/hierseg demo --out $(OUT)

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) $(OUT) build *.egg-info
