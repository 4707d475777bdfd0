#!/bin/bash
# point (d): shorter warm-ups of nutpie (diagonal), the per-gradient winner on simplified
cd /work/main
A=benchmarks/experiments/adaptation
for m in simplified matchup hierarchical; do
  for w in 300 500; do
    echo "== $(date +%T) nutpie $m warmup $w"; timeout 900 /tmp/adapt-venv/bin/python $A/nutpie_run.py $m sim --warmup $w 2>&1 | grep -v Warning | tail -2
  done
done
