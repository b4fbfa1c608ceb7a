#!/usr/bin/env bash
# One-shot GPU check (issues 10 and 11): pipeline, compact reads on 1-8
# threads, Atari and MuJoCo training loops, and MirroredStrategy on two
# logical GPUs, in about 8 minutes, ending with one summary.
#
#   benchmarks/gpu.sh [--cpu_only] [--capacity N] [--out DIR]
#
# Needs, for $PYTHON (default python3): TensorFlow with GPU support,
# dopamine-rl, gymnasium and ale-py, gin-config, absl-py, tqdm (setup.py's
# set). It installs nothing: on a machine without network, bring them as
# wheels and put them on PYTHONPATH first; a missing one is reported and the
# script exits 2 before doing anything. --cpu_only runs every part on the
# CPU (the mirrored check on two logical CPUs), e.g. to check the script on
# a machine without a GPU. Data: two generated checkpoints of --capacity
# ALE frames (default 200000). Each part
# has a time limit (about 8 minutes in all); LIMIT_SCALE=N multiplies them
# (for slow or shared machines).
set -uo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CPU_ONLY=0
CAPACITY=200000
OUT=${OUT:-$(mktemp -d)}
while (($#)); do
  case "$1" in
    --cpu_only) CPU_ONLY=1 ;;
    --capacity) CAPACITY=$2; shift ;;
    --out) OUT=$2; shift ;;
    *) echo "error: unknown argument $1 (valid: --cpu_only, --capacity N, --out DIR)"; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"

if ! $PYTHON - <<'EOF'; then exit 2; fi
import importlib.util, sys
missing = [m for m in ('tensorflow', 'dopamine', 'gymnasium', 'ale_py', 'gin',
                       'absl', 'tqdm', 'psutil')
           if importlib.util.find_spec(m) is None]
if missing:
  print(f'error: {sys.executable} lacks {", ".join(missing)}; this script '
        'installs nothing: bring them (e.g. as wheels on PYTHONPATH).')
  sys.exit(1)
EOF
if ((!CPU_ONLY)); then
  if ! $PYTHON -c "import tensorflow as tf, sys; sys.exit(not tf.config.list_physical_devices('GPU'))" 2>/dev/null; then
    echo "error: TensorFlow sees no GPU (use --cpu_only to run on the CPU)."
    exit 2
  fi
else
  export CUDA_VISIBLE_DEVICES=
fi

# step NAME SECONDS COMMAND...: runs with a time limit, keeps the log, and
# adds the log's last lines (the command's own summary) to the summary.
step() {
  local name=$1 limit=$(($2 * ${LIMIT_SCALE:-1})); shift 2
  local start=$SECONDS
  echo "== $name (at most ${limit}s)"
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  {
    echo "== $name: exit $rc, $((SECONDS - start))s"
    grep -v -i -E 'warning|absl|xla|tensorrt|cuda|oneDNN|cpu_feature|instructions' \
      "$OUT/$name.log" | tail -n "${TAIL:-12}"
  } >>"$SUMMARY"
}

{
  echo "gpu.sh at $(date -u +%FT%TZ): $(nproc) cores, capacity $CAPACITY, cpu_only=$CPU_ONLY"
  $PYTHON -c "import tensorflow as tf; print('TF', tf.__version__, tf.config.list_physical_devices())" 2>/dev/null
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
} >>"$SUMMARY"

step make_replay 90 $PYTHON benchmarks/make_replay.py "$WORK/gz" \
  --capacity "$CAPACITY" --checkpoints 2 --pool_steps 20000 --gzip_level 1
TAIL=16 step pipeline 170 $PYTHON benchmarks/pipeline.py \
  --replay_dir "$WORK/gz" --workdir "$WORK/bench" --seconds 10 \
  --read_parallel_calls 1,4 --json "$OUT/pipeline.json"
step frame_reads 40 $PYTHON benchmarks/frame_reads.py "$WORK/bench/converted10" \
  --threads 1,2,4,8 --calls 100
step atari_loop 90 $PYTHON benchmarks/atari_loop.py \
  --replay_dir "$WORK/gz" --seconds 20
step continuous 60 $PYTHON benchmarks/continuous.py --agents=td3,bc,cql \
  --seconds 5
if ((CPU_ONLY)); then
  step mirrored 45 $PYTHON benchmarks/mirrored_check.py --cpu
else
  step mirrored 45 $PYTHON benchmarks/mirrored_check.py
fi

echo
cat "$SUMMARY"
