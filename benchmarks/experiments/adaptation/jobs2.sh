#!/bin/bash
# nutpie (point e) and shorter warm-ups of the baseline (point d), after jobs1.txt
cd /work/main
A=benchmarks/experiments/adaptation
echo "== $(date +%T) simplified sim bj-lowrank-nutpie (rerun after the pmap fix)"; timeout 300 .venv/bin/python $A/adapt.py simplified sim bj-lowrank-nutpie 2>&1 | grep -v Warning | tail -2
for m in simplified matchup hierarchical; do
  for lr in "" "--lowrank"; do
    echo "== $(date +%T) nutpie $m $lr"; timeout 900 /tmp/adapt-venv/bin/python $A/nutpie_run.py $m sim $lr 2>&1 | grep -v Warning | tail -2
  done
done
