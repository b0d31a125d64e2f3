#!/usr/bin/env bash
# Prepare, on the CPU machine (which reaches PyPI), the wheels bench/gpu/run.sh installs on the GPU
# machine (which reaches nothing): trl, datasets, deepspeed and every requirement of theirs the
# device image lacks (bench/gpu/wheel_plan.py against bench/gpu/device_packages.txt), at the versions
# this repo's venv runs and is tested with; plus small pure-Python pins those need newer than an
# image may hold (typing-extensions for pydantic, fsspec for datasets).
#
#   bash bench/gpu/prepare_wheels.sh [DEST]        # DEST defaults to bench/gpu/wheels (gitignored)
#
# DeepSpeed ships only a source archive on PyPI, so it is built here into a pure-Python wheel
# (DS_BUILD_OPS=0: no compiled ops; ZeRO with a torch optimizer needs none, ops would JIT-build).
# Binary wheels are fetched for the device: CPython 3.12, manylinux x86-64.
# The folder travels to the device with the run tool's `carry` option:
#   carry: ["bench/gpu/wheels", "bench/gpu/assets"]   (assets: the Qwen3 tokenizer, see run.sh)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=${PY:-$REPO/.venv/bin/python}
DEST=${1:-$HERE/wheels}
mkdir -p "$DEST"
rm -f "$DEST"/*.whl "$DEST"/PLAN.txt   # one version of each: two would stop the whole install

ver() { "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
PLAN=$("$PY" "$HERE/wheel_plan.py")
ALSO="typing-extensions==$(ver typing-extensions) fsspec==$(ver fsspec)"
PLAT=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
for spec in $PLAN $ALSO; do
  name=${spec%%==*}
  if [ "$name" = deepspeed ]; then
    DS_BUILD_OPS=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$DEST" "$spec"
  else
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      "${PLAT[@]}" -d "$DEST" "$spec"
  fi
  echo "$spec" >> "$DEST/PLAN.txt"
done
ls -la "$DEST"
du -sh "$DEST"

# The Qwen3 tokenizer travels too (../shared does not reach the device): bench/gpu/assets (gitignored).
TOK="${REWARDOPS_SHARED:-$REPO/../shared}/models/qwen3-tokenizer"
if [ -f "$TOK/tokenizer.json" ]; then
  mkdir -p "$HERE/assets/qwen3-tokenizer"
  cp "$TOK"/tokenizer.json "$TOK"/tokenizer_config.json "$HERE/assets/qwen3-tokenizer/"
  du -sh "$HERE/assets"
else
  echo "warning: no Qwen3 tokenizer at $TOK; the GPU steps need bench/gpu/assets/qwen3-tokenizer" >&2
fi
# The real-data fixtures the shared-prefix step reads (hh-rlhf harmless, UltraFeedback sample, JudgeBench),
# to bench/gpu/assets/shared/data (gitignored; never committed), read there through REWARDOPS_SHARED.
DATA="${REWARDOPS_SHARED:-$REPO/../shared}/data"
for f in hh-rlhf/harmless-base-test.jsonl.gz ultrafeedback-sample/train_clean.jsonl judgebench/judgebench_gpt-4o.jsonl; do
  if [ -f "$DATA/$f" ]; then
    mkdir -p "$HERE/assets/shared/data/$(dirname "$f")"
    cp "$DATA/$f" "$HERE/assets/shared/data/$f"
  else
    echo "warning: no $DATA/$f; the prefix step needs it" >&2
  fi
done
du -sh "$HERE/assets"
