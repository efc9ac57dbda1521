#!/usr/bin/env bash
# Create .venv and install headcast with its test tools; cheap when nothing changed.
# pip's own chatter goes to .venv/bootstrap.log and is shown only when an install fails.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.headcast-installed"
log=".venv/bootstrap.log"
# re-install when the project's settings or its list of modules change: the strict editable install
# below links each module by name (build/__editable__.*), so a new module needs a new link
want="$({ cat pyproject.toml; find headcast extract predictor experiments -name '*.py' -o -name '*.yaml' | sort; } \
  | sha256sum | cut -d' ' -f1)"

install() {
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" >>"$log" 2>&1; then
    echo "bootstrap: 'pip install $*' failed; its output:" >&2
    cat "$log" >&2
    exit 1
  fi
}

if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up .venv (torch CPU build, headcast and its test tools; a few minutes the first time)"
  : >"$log"
  install --upgrade pip
  # the pinned CPU build first, so that no dependency pulls a CUDA build of torch
  install "torch==2.13.0"
  # strict: a tree of links that mirrors the import namespace (headcast.extract -> extract/, ...), which
  # type checkers and editors follow like any installed package (docs/architecture.md)
  install -e ".[dev]" --config-settings editable_mode=strict
  echo "$want" >"$stamp"
fi
