# Mean ± 95% t-interval per row of one or more `dsrm study paper` parts: validation R_tra of the selected epoch,
# then test NX_0 and FB metrics. Usage: python3 table.py RUN/max-len-30 [RUN2/max-len-30 ...]
import json, glob, sys, os, statistics as st
T = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776}
def ci(xs):
    m = st.mean(xs)
    h = T.get(len(xs), 2.0) * st.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else float('nan')
    return m, h
cols = [("NX_0", "R_tra"), ("NX_0", "Length"), ("NX_0", "AD_share"), ("NX_0", "CV"), ("FB", "R_tra"), ("FB", "Length")]
print("| row | seeds | validation R_tra | NX_0 R_tra | NX_0 Length | NX_0 AD_share | NX_0 CV | FB R_tra | FB Length |")
print("|---|---|---|---|---|---|---|---|---|")
for root in sys.argv[1:]:
    for m in sorted(os.listdir(root)):
        runs = [d for d in sorted(glob.glob(f"{root}/{m}/seed-*")) if os.path.exists(f"{d}/summary.json")]
        if not runs: continue
        ms = [json.load(open(f"{d}/metrics.json")) for d in runs]
        val = [json.load(open(f"{d}/summary.json"))["selected_validation_score"] for d in runs]
        cells = ["%.2f ± %.2f" % ci(val)]
        for mode, k in cols:
            fmt = "%.3f ± %.3f" if k in ("AD_share", "CV") else "%.2f ± %.2f"
            cells.append(fmt % ci([x[mode][k] for x in ms]))
        print(f"| {m} | {len(runs)} | " + " | ".join(cells) + " |")
