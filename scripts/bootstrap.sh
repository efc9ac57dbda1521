#!/usr/bin/env bash
# Create .venv and install headcast; cheap when nothing changed.
#   bash scripts/bootstrap.sh          what the demo and the CLI need
#   bash scripts/bootstrap.sh --tests  that plus the test tools and the optional extras the tests cover
# pip's own chatter goes to .venv/bootstrap.log and is shown only when an install fails.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  "") extras="" ;;
  --tests) extras="[dev,lmms-eval,vlmevalkit,ray]" ;;
  *) echo "bootstrap: unknown option '$1'; use no option (the demo) or --tests" >&2; exit 2 ;;
esac
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.headcast-installed"
log=".venv/bootstrap.log"
have="$(cat "$stamp" 2>/dev/null || true)"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)$extras"

install() {
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" >>"$log" 2>&1; then
    echo "bootstrap: 'pip install $*' failed; its output:" >&2
    cat "$log" >&2
    exit 1
  fi
}

# a venv set up for the tests serves the demo too
if [ "$have" != "$want" ] && { [ -n "$extras" ] || [ "${have%%\[*}" != "$want" ]; }; then
  echo "setting up .venv (torch CPU build, headcast${extras:+, the test tools and extras}; a few minutes the first time)"
  : >"$log"
  install --upgrade pip
  # the pinned CPU build first, so that no dependency pulls a CUDA build of torch
  install "torch==2.13.0"
  if [ -n "$extras" ]; then
    # lmms-eval without its own dependencies (it pins torchvision, whose PyPI wheel breaks next to the CPU
    # torch), then headcast with the ones it really imports: the lmms-eval extra
    install --no-deps "lmms-eval==0.7.3"
  fi
  install -e ".$extras"
  echo "$want" >"$stamp"
fi
