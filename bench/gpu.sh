#!/bin/bash
# One device call: CUDA path check, GPU step throughput, and the ranking curve at GPU scale.
# usage (from the repository root, on the device machine): bash bench/gpu.sh DEVICE BUDGET_A EPOCHS_A POINTS_A BUDGET_B EPOCHS_B POINTS_B LIMIT_S
set -u
DEV=$1; OUTD=${OUT:-/tmp/out}; mkdir -p $OUTD
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MPLBACKEND=Agg
mkdir -p ../shared/data && cp -rn .devdata/cifar10-jpeg.tar.gz .devdata/nb201 ../shared/data/ 2>/dev/null
PY=${PY:-python3}
{
date; nvidia-smi -L 2>&1; nproc
$PY -c "import torch,sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '-')"
# 1. the CLI's CUDA path: a short quick search, resumed, and ranking on the device
timeout 120 $PY -m nsas search --epochs 2 --device $DEV --out /tmp/q --quiet && \
timeout 60 $PY -m nsas rank /tmp/q --sample 100 --device $DEV --out /tmp/q/scores.csv --quiet && head -3 /tmp/q/scores.csv && tail -2 /tmp/q/log.txt
time $PY -c "from nsas.data import load_dataset; load_dataset('imagefolder:../shared/data/cifar10-jpeg.tar.gz', None)"
} > $OUTD/check.log 2>&1
# 2. two ranking curves side by side: A at NB201's own size, B the CPU benchmark's supernet, far longer
cd $PWD
timeout $8 $PY bench/ranking.py curve --out /tmp/gpu --methods ce-functions --seeds 0 --budget $2 --epochs $3 --points $4 \
   --set channels=16 cells=5 device=$DEV --tag _c16n5 > $OUTD/curveA.log 2>&1 &
timeout $8 $PY bench/ranking.py curve --out /tmp/gpu --methods ce-functions --seeds 0 --budget $5 --epochs $6 --points $7 \
   --set device=$DEV --tag _c8n1 > $OUTD/curveB.log 2>&1 &
wait
cp /tmp/gpu/curve-*.jsonl $OUTD/ 2>/dev/null
for r in /tmp/gpu/runs/curve-*; do tail -n 3 $r/metrics.jsonl | grep '"kind": "step"' | tail -1 | cut -c1-200 > $OUTD/$(basename $r).last 2>/dev/null; grep -m1 '"step": 1000,' $r/metrics.jsonl | cut -c1-200 >> $OUTD/$(basename $r).last; done
ls -la $OUTD
