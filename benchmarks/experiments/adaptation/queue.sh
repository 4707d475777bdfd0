#!/bin/bash
# Runs the variants one after another (2-core machine): bash queue.sh < jobs.txt
# each line: MODEL DATA METHOD [extra args]; a job is stopped after $LIMIT s (default 900).
cd /work/main
LIMIT=${LIMIT:-900}
while read -r line; do
  [ -z "$line" ] && continue
  echo "== $(date +%T) $line"
  timeout $LIMIT .venv/bin/python benchmarks/experiments/adaptation/adapt.py $line 2>&1 | grep -v Warning | tail -4
  echo "rc=${PIPESTATUS[0]}"
done
