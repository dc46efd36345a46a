#!/usr/bin/env bash
# #23's GPU part as one prepared run (a benchmark, not a test; sized for ~7 minutes on an H100 / H200):
#   1. a value's way to host memory (Flux.1-dev's (1, 4096, 3072) bf16) vs a plain pinned-copy loop, alone and beside
#      compute: bench/d2h_bench.py
#   2. a full recording of 4 names of a random-weight Flux.1-dev-sized transformer at 1024 x 1024 vs plain and
#      stats-only, with one and with 4 write threads: bench/store_bench.py --model flux-dev
#   3. stats-only on the small models, which are not GPU-bound: the random Flux of 1024 tokens and the tiny model
# Needs dit-lens and its dependencies importable by python3 (a bare device machine: carried wheels) and a CUDA GPU.
#     bash bench/gpu_record.sh [out-dir]        (the log is written there too; default /tmp/dit-lens-gpu)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/dit-lens-gpu}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
names=double.0.img.resid_post,double.18.img.resid_post,single.0.img.resid_post,single.37.img.resid_post
{
  python3 -c "import torch; assert torch.cuda.is_available(), 'needs a CUDA GPU'; print(torch.__version__, torch.cuda.get_device_name())"
  python3 bench/d2h_bench.py --device cuda --values 64 --rounds 5
  for k in 1 4; do
    python3 bench/store_bench.py --only recording --model flux-dev --device cuda --prompts 2 --batch 1 --steps 28 \
      --repeats 3 --kinds plain,full,stats --names "$names" --write-threads "$k" --dir /tmp/dit-lens-gpu-stores
  done
  python3 bench/store_bench.py --only recording --model flux --device cuda --prompts 8 --batch 4 --steps 10 \
    --repeats 5 --kinds plain,stats --dir /tmp/dit-lens-gpu-stores
  python3 bench/store_bench.py --only recording --model tiny --device cuda --prompts 32 --batch 8 --steps 20 \
    --repeats 5 --kinds plain,stats --dir /tmp/dit-lens-gpu-stores
} 2>&1 | tee "$out/gpu_record.log"
