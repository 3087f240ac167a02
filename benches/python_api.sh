#!/usr/bin/env bash
# The Python package against the command line and against ART + cleanlab, on the same 50,000 x
# 128 embeddings (benches/python_api.py makes them: ten classes, 5 % carrying a trigger
# direction under label 0), one process each under /usr/bin/time, as one table.
#   process s: wall time of the whole process (start-up, loading the arrays, the scan);
#   call s: the detection call alone, as the process measured it (the CLI: the report's
#   timings summed).
# poisongate runs `--embedder precomputed` on the arrays (every detector on them). ART runs
# spectral signatures and activation clustering per class at its defaults; cleanlab runs
# find_label_issues on 5-fold k-NN (k = 10) predicted probabilities.
# Usage: bash benches/python_api.sh   (the release wheel is built into the bench venv)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/poisongate-target}
py=$(bash benches/venv.sh)
"$py" -c "import cleanlab, pyarrow, maturin" 2>/dev/null ||
  "$py" -m pip install --quiet cleanlab==2.9.0 pyarrow==25.0.1 maturin==1.15.0 >&2
cargo build --release --locked --quiet
bin=$CARGO_TARGET_DIR/release/poisongate
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd python && "$(dirname "$py")/maturin" build --quiet --release --locked --interpreter "$py" \
  --out "$work/wheel" >&2)
"$py" -m pip install --quiet --force-reinstall --no-deps "$work"/wheel/*.whl
threads=$(nproc)
export RAYON_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
"$py" benches/python_api.py make "$work/data"

timed() {
  local name=$1
  shift
  /usr/bin/time -v "$@" >"$work/$name.out" 2>"$work/$name.time" || true
  awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$work/$name.time" >"$work/$name.rss"
  awk '/Elapsed \(wall clock\)/ {n = split($NF, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' \
    "$work/$name.time" >"$work/$name.secs"
}
timed cli "$bin" scan "$work/data/labels.parquet" --embeddings "$work/data/emb.npy" \
  --embedder precomputed -q --format json --out "$work/cli-report"
[ -f "$work/cli-report/report.json" ] || { cat "$work/cli.out" "$work/cli.time" >&2; exit 1; }
timed python "$py" benches/python_api.py poisongate "$work/data"
timed art "$py" benches/python_api.py art "$work/data"
timed cleanlab "$py" benches/python_api.py cleanlab "$work/data"

"$py" - "$work" <<'PY'
import json, re, sys
import numpy as np, pyarrow.parquet as pq
work = sys.argv[1]
def read(name):
    return open(f"{work}/{name}.secs").read().strip(), open(f"{work}/{name}.rss").read().strip()
truth = np.load(f"{work}/data/truth.npy")
cli = json.load(open(f"{work}/cli-report/report.json"))
flagged = pq.read_table(f"{work}/cli-report/scores.parquet").column("flagged").fill_null(False).to_numpy()
tp = int((flagged & truth).sum()); p = tp / max(flagged.sum(), 1); r = tp / truth.sum()
t = cli["timings"]
call = sum(v["seconds"] for v in t["views"]) + sum(x["seconds"] for x in t["detectors"])
rows = [("poisongate CLI", *read("cli"), f"{call:.2f}",
         f"{int(flagged.sum())}", f"{p:.3f}", f"{r:.3f}", f"{2 * p * r / (p + r) if p + r else 0:.3f}")]
for name, label in [("python", "poisongate.scan (Python)"), ("art", "ART spectral signatures"),
                    ("cleanlab", "cleanlab find_label_issues")]:
    out = open(f"{work}/{name}.out").read()
    kv = dict(re.findall(r"(\w+)=([\d.]+)", out))
    if not kv:
        print(open(f"{work}/{name}.time").read()[-2000:], file=sys.stderr)
        raise SystemExit(f"{name} failed")
    rows.append((label, *read(name), kv["seconds"], kv["flagged"], kv["precision"], kv["recall"], kv["f1"]))
    if name == "art":
        rows.append(("ART activation clustering", "(same run)", "", "", kv["clustering_flagged"],
                     kv["clustering_precision"], kv["clustering_recall"], kv["clustering_f1"]))
print("| run | process s | peak MiB | call s | flagged | precision | recall | F1 |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
cli_s, py_s = float(rows[0][1]), float(rows[1][1])
print(f"\nPython process against the CLI process: {100 * (py_s - cli_s) / cli_s:+.1f} %")
PY
