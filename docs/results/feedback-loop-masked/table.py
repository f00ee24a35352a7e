# The round-0 -> last-round table of a `dsrm loop` summary (mean ± 95% CI; "clear": the two intervals do not
# overlap). Usage: python3 table.py RUN/loop/summary.csv
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
d = {}
for r in rows:
    d[(r['method'], int(r['round']), r['metric'])] = (float(r['mean']), float(r['ci95']))
methods = ["mf-greedy", "mf-greedy-static", "most-popular", "flat-ppo", "reward-shaping", "fcpo", "dorl", "dnair", "sac4ir", "dsrm-hrl"]
last = max(k[1] for k in d)
def cell(m, met, fmt):
    a, b = d[(m, 0, met)], d[(m, last, met)]
    s = f"{fmt % a[0]} ± {fmt % a[1]} → {fmt % b[0]} ± {fmt % b[1]}"
    if a[0] + a[1] < b[0] - b[1]: s += " (clear)"
    elif b[0] + b[1] < a[0] - a[1]: s += " (clear, down)"
    return s
print(f"| method | Gini round 0 → {last} | homogenisation 0 → {last} | R_tra 0 → {last} | true utility per step 0 → {last} | log Gini at {last} |")
print("|---|---|---|---|---|---|")
for m in methods:
    lg = d[(m, last, 'LogGini')]
    name = f"**{m}**" if m == "dsrm-hrl" else m
    print(f"| {name} | {cell(m,'Gini','%.3f')} | {cell(m,'Homogenisation','%.3f')} | {cell(m,'R_tra','%.2f')} | {cell(m,'TrueUtility','%.3f')} | {lg[0]:.3f} ± {lg[1]:.3f} |")
