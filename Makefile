# Two commands on a fresh clone: `make demo` and `make test`.
#   demo: installs the package the way a user does (not editable) into .venv-demo, so a packaging mistake
#         (a missing profile, an undeclared dependency) shows in the demo;
#   test: an editable install with the test and dev extras in .venv; format check, install check, pytest.
# Two virtualenvs, not one: one venv holding the package editable for `make test` and non-editable for
# `make demo` would reinstall it on every switch, and after a `make demo` the tests would run against the
# installed copy instead of the working tree.
PYTHON ?= python3
VENV := .venv
DEMO_VENV := .venv-demo
PIP_QUIET := --quiet --disable-pip-version-check
# setuptools' "Editable installation" notice warns about a same-named folder beside the checkout: that is
# the point of an editable install, so it is silenced (only that message)
EDITABLE_QUIET := PYTHONWARNINGS='ignore:Editable installation'
TEST_STAMP := $(VENV)/.installed-test-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)
FORMATTED := amanflix_stress tests bench .ci

.PHONY: demo test cluster-test lint typecheck install-check bench clean

$(VENV)/bin/python $(DEMO_VENV)/bin/python:
	$(PYTHON) -m venv $(patsubst %/bin,%,$(@D))
	$@ -m pip install $(PIP_QUIET) --upgrade pip

$(TEST_STAMP): $(VENV)/bin/python
	$(EDITABLE_QUIET) $(VENV)/bin/python -m pip install $(PIP_QUIET) -e '.[test,dev]'
	touch $@

# pip rebuilds a local directory on every install; build/ is removed first because setuptools would ship
# files left in build/lib that no longer exist in the source
# the commands are not echoed: the demo's output is the story, and its last line the HTML report's path
demo: $(DEMO_VENV)/bin/python
	@rm -rf build
	@echo "installing amanflix-stress[sandbox,html] into $(DEMO_VENV) (quiet) ..."
	@$(DEMO_VENV)/bin/python -m pip install $(PIP_QUIET) '.[sandbox,html]'
	@$(DEMO_VENV)/bin/amanflix-stress demo

test: $(TEST_STAMP)
	$(VENV)/bin/ruff format --check $(FORMATTED)
	$(VENV)/bin/ruff check $(FORMATTED)
	$(VENV)/bin/mypy
	$(VENV)/bin/python .ci/install_check.py
	$(MAKE) cluster-test
	$(VENV)/bin/python -m pytest --ignore=tests/cluster

# --cluster across hosts: four network namespaces on this machine (needs root; skips with one line
# otherwise), about a minute; docs/cluster.md
cluster-test: $(TEST_STAMP)
	$(VENV)/bin/python -m pytest tests/cluster

lint: $(TEST_STAMP)
	$(VENV)/bin/ruff check $(FORMATTED)

typecheck: $(TEST_STAMP)
	$(VENV)/bin/mypy

install-check: $(TEST_STAMP)
	$(VENV)/bin/python .ci/install_check.py

bench: $(TEST_STAMP)
	$(EDITABLE_QUIET) $(VENV)/bin/python -m pip install $(PIP_QUIET) -e '.[bench]'
	$(VENV)/bin/python bench/run.py

clean:
	rm -rf $(VENV) $(DEMO_VENV) build dist *.egg-info reports .pytest_cache .hypothesis .mypy_cache .ruff_cache
