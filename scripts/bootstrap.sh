#!/usr/bin/env bash
# Create .venv and install headcast with its test tools; cheap when nothing changed.
# pip's own chatter goes to .venv/bootstrap.log and is shown only when an install fails.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.headcast-installed"
log=".venv/bootstrap.log"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"

install() {
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" >>"$log" 2>&1; then
    echo "bootstrap: 'pip install $*' failed; its output:" >&2
    cat "$log" >&2
    exit 1
  fi
}

if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up .venv (torch CPU build, headcast, lmms-eval and the test tools; a few minutes the first time)"
  : >"$log"
  install --upgrade pip
  # the pinned CPU build first, so that no dependency pulls a CUDA build of torch
  install "torch==2.13.0"
  # lmms-eval without its own dependencies (it pins torchvision, whose PyPI wheel breaks next to the CPU
  # torch), then headcast with the ones it really imports: the lmms-eval extra
  install --no-deps "lmms-eval==0.7.3"
  install -e ".[dev,lmms-eval,vlmevalkit,ray]"
  echo "$want" >"$stamp"
fi
