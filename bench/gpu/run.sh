#!/usr/bin/env bash
# The GPU benches on one GPU, in one prepared, time-boxed run: install the carried wheels, then
#   2 correctness (packed == unpacked, no attention across packed boundaries, bf16 batch-size
#     invariance of scoring, a 16K-token pair at the 0.6B shape)
#   3 training throughput vs TRL RewardTrainer (defaults and matched), 0.6B and 1.7B, ckpt on/off
#   4 scoring throughput vs peer-style padded batches of 8
#   5 DeepSpeed ZeRO-1/2/3 bf16 loss curves vs plain bf16, export after ZeRO-3 reloads
#   6 prefix: the shared-prefix layout (FlexAttention block mask): exact vs the plain layout (fp32
#     and bf16) on hh-rlhf harmless, no leak, training pairs/s vs plain and TRL matched on hh-rlhf
#     and UltraFeedback, best-of-32 scoring vs plain and the padded peer (bench/gpu/shared_prefix.py)
# each under its own `timeout`, so one failure or hang does not cost the rest. Every step writes
# its JSON into OUT_DIR as it goes; run.json lists each step's exit code and seconds; run.log has
# all output. At most 8 files land in OUT_DIR (the device tool brings back 8).
#
#   bash bench/gpu/run.sh OUT_DIR [--smoke] [--wheels DIR] [--steps "install correctness train score deepspeed prefix"]
#
# Before (on the CPU machine): bash bench/gpu/prepare_wheels.sh   (wheels + the Qwen3 tokenizer and data copies)
# On the device, through the run tool (timeout_s 600, about 9 minutes of work):
#   command: bash bench/gpu/run.sh "$OUT"
#   carry:   ["bench/gpu/wheels", "bench/gpu/assets"]
# To redo only some steps on the same warm machine: --steps "score deepspeed". The shared-prefix step alone
# (about 3 minutes): --steps "install prefix".
# Time boxes (seconds), overridable: T_INSTALL T_PRE T_CORRECT T_TRAIN T_SCORE T_DS T_PREFIX; DS_WORKER_TIMEOUT per DeepSpeed run.
# --smoke: tiny shapes on CPU, CUDA-only checks answer {"status": "needs CUDA"}; on a Python other
# than the device's 3.12 the wheels are only checked for installability (not put on the path).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${1:?usage: run.sh OUT_DIR [--smoke] [--wheels DIR] [--steps LIST]}
shift
SMOKE=""
WHEELS="$HERE/wheels"
STEPS="install correctness train score deepspeed prefix"
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE="--smoke" ;;
    --wheels) WHEELS=$(cd "$2" && pwd); shift ;;
    --steps) STEPS="$2"; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
if [ -z "${PY:-}" ]; then  # the device's python3 holds torch; a smoke run here uses the repo's venv
  if [ -n "$SMOKE" ] && [ -x "$REPO/.venv/bin/python" ]; then PY="$REPO/.venv/bin/python"; else PY=python3; fi
fi
if [ -n "$SMOKE" ]; then
  D_INSTALL=120; D_PRE=120; D_CORRECT=300; D_TRAIN=900; D_SCORE=300; D_DS=900; D_PREFIX=900   # shared 2-core CPU, tiny shapes
else
  D_INSTALL=30; D_PRE=40; D_CORRECT=80; D_TRAIN=210; D_SCORE=60; D_DS=150; D_PREFIX=180   # about 9 minutes (+3 for prefix) on one GPU
fi
T_INSTALL=${T_INSTALL:-$D_INSTALL}; T_PRE=${T_PRE:-$D_PRE}; T_CORRECT=${T_CORRECT:-$D_CORRECT}; T_TRAIN=${T_TRAIN:-$D_TRAIN}
T_SCORE=${T_SCORE:-$D_SCORE}; T_DS=${T_DS:-$D_DS}; T_PREFIX=${T_PREFIX:-$D_PREFIX}
WORK=${WORK:-/tmp/rewardops-gpu-work}
SITE=${SITE:-/tmp/rewardops-site}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$REPO/src:$REPO/bench${PYTHONPATH:+:$PYTHONPATH}"
# ../shared does not reach the device: prepare_wheels.sh copies the data fixtures the steps read
if [ -d "$HERE/assets/shared/data" ]; then export REWARDOPS_SHARED="$HERE/assets/shared"; fi
LOG="$OUT/run.log"
STATUS="$OUT/run.json"
PARTS="$WORK/run.json.parts"   # outside OUT: the tool brings back at most 8 files
mkdir -p "$WORK"
echo "[" > "$PARTS"
T0=$(date +%s)
case " $STEPS " in
  *" install "*) ;;
  *) if [ -d "$SITE" ]; then export PYTHONPATH="$SITE:$PYTHONPATH"; fi ;;  # a rerun on the same warm machine
esac

record() {  # name rc seconds limit
  echo "{\"step\": \"$1\", \"rc\": $2, \"seconds\": $3, \"limit_s\": $4, \"timed_out\": $([ "$2" = 124 ] || [ "$2" = 137 ] && echo true || echo false)}," >> "$PARTS"
  { sed '$ s/,$//' "$PARTS"; echo "]"; } > "$STATUS"
}

step() {  # name limit command...
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit}s) $(date -u +%H:%M:%S)" | tee -a "$LOG"
  local start; start=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG" | grep --line-buffered -E '^\[|^imports|^\{|Error|error' | cut -c1-400
  local rc=${PIPESTATUS[0]}
  record "$name" "$rc" $(( $(date +%s) - start )) "$limit"
  echo "=== $name rc=$rc in $(( $(date +%s) - start ))s" | tee -a "$LOG"
}

install_wheels() {
  local wheels=("$WHEELS"/*.whl)
  if [ ! -e "${wheels[0]}" ]; then echo "no wheels in $WHEELS: run bench/gpu/prepare_wheels.sh here first"; return 3; fi
  local pyver; pyver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  rm -rf "$SITE"
  if [ "$pyver" = "3.12" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}" || return $?
    echo "installed ${#wheels[@]} wheels into $SITE"
  else  # smoke on another Python: prove the set installs for the device's interpreter, import from this env
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" --only-binary=:all: \
      --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 "${wheels[@]}" || return $?
    echo "verified ${#wheels[@]} wheels install for CPython 3.12 x86-64 into $SITE (this Python is $pyver: not put on the path)"
    rm -rf "$SITE"
  fi
}

for s in $STEPS; do
  case "$s" in
    install)
      echo "=== install (limit ${T_INSTALL}s)" | tee -a "$LOG"
      start=$(date +%s)
      timeout "$T_INSTALL" bash -c "$(declare -f install_wheels); PY='$PY' WHEELS='$WHEELS' SITE='$SITE' install_wheels" >> "$LOG" 2>&1
      rc=$?
      record install "$rc" $(( $(date +%s) - start )) "$T_INSTALL"
      tail -1 "$LOG"
      ;;
    correctness) step correctness "$T_CORRECT" "$PY" "$HERE/correctness.py" "$OUT" $SMOKE --work "$WORK" ;;
    train)       step train "$T_TRAIN" "$PY" "$HERE/train_throughput.py" "$OUT" $SMOKE --work "$WORK" ;;
    score)       step score "$T_SCORE" "$PY" "$HERE/scoring.py" "$OUT" $SMOKE --work "$WORK" ;;
    deepspeed)   step deepspeed "$T_DS" "$PY" "$HERE/deepspeed_check.py" "$OUT" $SMOKE --work "$WORK" ;;
    prefix)      step prefix "$T_PREFIX" "$PY" "$HERE/shared_prefix.py" "$OUT" $SMOKE --work "$WORK" ;;
    *) echo "unknown step $s" | tee -a "$LOG" ;;
  esac
  if [ "$s" = install ]; then
    if [ -d "$SITE" ]; then export PYTHONPATH="$SITE:$PYTHONPATH"; fi
    step preflight "$T_PRE" "$PY" "$HERE/preflight.py" "$OUT" "$WHEELS"
  fi
done
echo "=== all steps in $(( $(date +%s) - T0 ))s" | tee -a "$LOG"
"$PY" "$HERE/summarize.py" "$OUT" || true
