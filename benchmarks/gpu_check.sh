#!/usr/bin/env bash
# The GPU check on a lent machine without network (≤ 8 minutes): run from the repository root after
# `python benchmarks/make_gpu_bundle.py` here, carrying benchmarks/gpu_bundle.
#
#   bash benchmarks/gpu_check.sh            # figures and markdown on stdout; $OUT/gpu_check.{log,json} when OUT is set
#
# Installs the bundled wheels into a venv that sees the image's torch, transformers, onnxruntime,
# numpy and pyarrow (--system-site-packages; no index is reached), then runs benchmarks/gpu_check.py
# under a wall-clock budget. Env: PYTHON (python3), BUNDLE (benchmarks/gpu_bundle), BUDGET_S (430:
# what the python part may take; it stops cleanly before), CHECK_ARGS (more gpu_check.py options).
set -euo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS
PYTHON=${PYTHON:-python3}
BUNDLE=${BUNDLE:-benchmarks/gpu_bundle}
BUDGET_S=${BUDGET_S:-430}
OUT=${OUT:-}
VENV=${VENV:-/tmp/qa-engine-gpu-venv}

[ -f "$BUNDLE/BUNDLE.json" ] || { echo "no bundle at $BUNDLE: run python benchmarks/make_gpu_bundle.py first, and carry it" >&2; exit 2; }
want=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["python"])' "$BUNDLE/BUNDLE.json")
have=$("$PYTHON" -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
if [ "$want" != "$have" ]; then
    echo "the bundle's wheels are for python $want, this machine's $PYTHON is $have: rebuild it here with make_gpu_bundle.py --python $have (or set PYTHON)" >&2
    exit 2
fi
"$PYTHON" -c 'import torch, transformers, onnxruntime, numpy, pyarrow; print("image: torch", torch.__version__, "| transformers", transformers.__version__, "| onnxruntime", onnxruntime.__version__, "| numpy", numpy.__version__, "| pyarrow", pyarrow.__version__)'

if "$PYTHON" -m venv --system-site-packages "$VENV" 2>/dev/null; then
    RUN="$VENV/bin/python"
    "$RUN" -m pip install --quiet --no-index --find-links "$BUNDLE/wheels" -r "$BUNDLE/requirements.txt"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # an image may put its packages on PYTHONPATH
else  # an image without ensurepip: the same wheels into a folder on PYTHONPATH
    RUN="$PYTHON"
    "$PYTHON" -m pip install --quiet --no-index --find-links "$BUNDLE/wheels" --target "$VENV" -r "$BUNDLE/requirements.txt"
    export PYTHONPATH="$PWD:$VENV${PYTHONPATH:+:$PYTHONPATH}"
fi
echo "installed the bundle in $((SECONDS - START)) s"

args=(--budget-s "$BUDGET_S")
[ -n "$OUT" ] && args+=(--json "$OUT/gpu_check.json")
# shellcheck disable=SC2086 # CHECK_ARGS is a list of options
timeout --signal=INT --kill-after=10 $((BUDGET_S + 20)) "$RUN" benchmarks/gpu_check.py "${args[@]}" ${CHECK_ARGS:-} \
    2>&1 | if [ -n "$OUT" ]; then tee "$OUT/gpu_check.log"; else cat; fi
echo "gpu_check.sh done in $((SECONDS - START)) s"
