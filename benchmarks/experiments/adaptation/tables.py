"""Markdown tables of results.jsonl, one per model and data set (for README.md).

  .venv/bin/python benchmarks/experiments/adaptation/tables.py [results.jsonl]
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "results.jsonl"
rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
groups = defaultdict(lambda: defaultdict(list))
for r in rows:
    key = (r["method"] + (f" ({r['tag']})" if r.get("tag") else ""), r["warmup"])
    groups[(r["model"], r["data"])][key].append(r)


def fmt(xs, f="{:,.0f}"):
    return " / ".join(f.format(x) for x in xs)


for (model, data), by in groups.items():
    print(f"\n### {model}, {data}\n")
    print("| method | warm-up | min ESS_bulk (per seed) | max R-hat | div (warm-up) | gradients (k, warm-up + draws) "
          "| ESS / 1k grads | mean steps/draw | wall s | ESS / s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ranked = sorted(by.items(), key=lambda kv: -sum(r["ess_per_1k_grads"] for r in kv[1]) / len(kv[1]))
    for (method, warm), rs in ranked:
        rs = sorted(rs, key=lambda r: r["seed"])
        print(
            f"| {method} | {warm} | {fmt([r['min_ess_bulk'] for r in rs])} | {max(r['max_rhat'] for r in rs):.3f} "
            f"| {fmt([r['div'] for r in rs])} ({fmt([r['warm_div'] for r in rs])}) "
            f"| {fmt([r['warm_grads'] / 1e3 for r in rs])} + {fmt([r['samp_grads'] / 1e3 for r in rs])} "
            f"| {fmt([r['ess_per_1k_grads'] for r in rs], '{:.2f}')} | {fmt([r['mean_steps'] for r in rs], '{:.1f}')} "
            f"| {fmt([r['wall_s'] for r in rs])} | {fmt([r['ess_per_s'] for r in rs], '{:.0f}')} |"
        )
