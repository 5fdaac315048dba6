#!/usr/bin/env bash
# The test command: installs everything (venv, Python packages, Debian's Chromium for the browser
# test), runs ruff, and runs the suite (and src's doctests) on small slices of the real data. Slow tests: `scripts/test.sh -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null  # a CJK font for the screenshots
  else
    echo "note: chromium missing and not root; the browser test will be skipped" >&2
  fi
fi
.venv/bin/ruff check .           # lint: the rules in pyproject.toml's [tool.ruff.lint]
.venv/bin/ruff format --check .  # layout: `ruff format` gives the checked-in layout
export HASHREC_CACHE="${HASHREC_CACHE:-$PWD/.cache}"
exec .venv/bin/python -m pytest -q "$@"
