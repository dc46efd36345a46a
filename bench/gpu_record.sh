#!/usr/bin/env bash
# #23's GPU part as one prepared run (a benchmark, not a test; sized for ~7 minutes on an H100 / H200):
#   1. a value's way to host memory (Flux.1-dev's (1, 4096, 3072) bf16) vs a plain pinned-copy loop, alone and beside
#      compute: bench/d2h_bench.py
#   2. a full recording of 4 names of a random-weight Flux.1-dev-sized transformer at 1024 x 1024 vs plain and
#      stats-only, with one and with 4 write threads: bench/store_bench.py --model flux-dev
#   3. stats-only on the small models, which are not GPU-bound: the random Flux of 1024 tokens and the tiny model
# Needs dit-lens and its dependencies importable by python3 (a bare device machine: carried wheels) and a CUDA GPU.
#     bash bench/gpu_record.sh [out-dir]          (the log is written there too; default /tmp/dit-lens-gpu)
#     bash bench/gpu_record.sh --check [out-dir]  every command at toy sizes on the CPU (Flux.1-dev's depth at width
#                                                 64; about 40 s on 2 cores): a check of the script, no numbers
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
if [[ "${1:-}" == "--check" ]]; then check=1; shift; fi
out=${1:-/tmp/dit-lens-gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
names=double.0.img.resid_post,double.18.img.resid_post,single.0.img.resid_post,single.37.img.resid_post
if (( check )); then  # the same commands, the sizes that change the work (not the code paths) made small
  dev=cpu shrink=--shrink d2h=(--shape 1,256,64 --values 8 --rounds 2 --width 64)
  dev_steps=2 dev_repeats=1 small=(--prompts 4 --batch 2 --steps 2 --repeats 1)
  log="$out/gpu_record_check.log" stores="$out/stores"
else
  dev=cuda shrink= d2h=(--values 64 --rounds 5)
  dev_steps=28 dev_repeats=3 small=()
  log="$out/gpu_record.log" stores=/tmp/dit-lens-gpu-stores  # not under out-dir: a device run's out-dir comes back
fi
{
  if (( check )); then
    python3 -c "import torch; print(torch.__version__, 'CPU check of the prepared GPU run')"
  else
    python3 -c "import torch; assert torch.cuda.is_available(), 'needs a CUDA GPU'; print(torch.__version__, torch.cuda.get_device_name())"
  fi
  python3 bench/d2h_bench.py --device "$dev" "${d2h[@]}"
  for k in 1 4; do
    python3 bench/store_bench.py --only recording --model flux-dev $shrink --device "$dev" --prompts 2 --batch 1 \
      --steps "$dev_steps" --repeats "$dev_repeats" --kinds plain,full,stats --names "$names" --write-threads "$k" \
      --dir "$stores"
  done
  python3 bench/store_bench.py --only recording --model flux --device "$dev" --prompts 8 --batch 4 --steps 10 \
    --repeats 5 --kinds plain,stats --dir "$stores" "${small[@]}"
  python3 bench/store_bench.py --only recording --model tiny --device "$dev" --prompts 32 --batch 8 --steps 20 \
    --repeats 5 --kinds plain,stats --dir "$stores" "${small[@]}"
} 2>&1 | tee "$log"
