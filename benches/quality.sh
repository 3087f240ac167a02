#!/usr/bin/env bash
# The detection quality harness over the development suite (datasets/suite.toml). For every
# dataset of the chosen half it fetches the data (each dataset's own pinned script), plants
# each attack at each rate and seed with `poisongate bench` (no poison rate is given to any
# detector), runs the clean twin, and prints one table per half: the fused verdict's
# precision, recall and F1 (suspected poisoning only; label issues are warnings), how much it
# flagged, and whether the gate passed on the clean twin.
#
# The split into `tuning` and `test` is fixed in datasets/suite.toml. Nothing is chosen on
# `test`: run it to report, never to tune.
#
# Usage: bash benches/quality.sh [--split tuning|test|all] [--only NAME[,NAME]]
#          [--attacks "clean badnets blend flip"] [--rates "0.05 0.1"] [--seeds "0"]
#          [--blend-alpha 0.15] [--patch N] [--embedder E] [--activations] [--resume]
#          [--probe-net auto|cnn|mlp] [--scan-args "ARGS" --tag TAG] [--bin PATH]
#        --patch N: BadNets patch size (pixels; trigger columns for tables) for every dataset,
#        in place of the suite file's; the rows are then named NAME+patchN. A --blend-alpha
#        other than 0.15 names them NAME+alphaA.
#        --probe-net NET: the probe's network (scan's --probe-net); rows are named NAME+NET
#        for cnn and mlp. Tables and text take the MLP whatever is asked, so only image sets run.
#        --scan-args "ARGS": more scan options for every run (e.g. "--knn-index ivf"); the rows
#        are then named NAME+TAG.
#        --resume: keep the runs already in $QUALITY_LOG (same binary and options assumed)
#        and do only the missing ones.
#        --activations: judge each run on a model's own activations, as a user who brings
#        them would: plant the attack (`bench --embedder raw --out`), train scikit-learn's MLP
#        (128-64) on the poisoned rows (benches/activations.py, in a venv it makes at
#        $BENCH_VENV, default ~/.cache/poisongate-bench-venv, from PyPI), and run `bench`
#        again with `--embeddings` on its penultimate layer (same attack, seed and rows).
#        Full JSON per run lands in $QUALITY_LOG (default $CARGO_TARGET_DIR/quality/);
#        the tables are printed and also written to $QUALITY_LOG/summary-<split>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/poisongate-target}
split=all
only=""
attacks="clean badnets blend flip"
rates="0.05 0.1"
seeds="0"
blend_alpha=0.15
embedder=""
activations=0
resume=0
patch=""
probe_net=auto
scan_args=""
tag=""
bin=""
while [ $# -gt 0 ]; do
  case $1 in
    --split) split=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --attacks) attacks=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --blend-alpha) blend_alpha=$2; shift 2 ;;
    --embedder) embedder=$2; shift 2 ;;
    --activations) activations=1; shift ;;
    --resume) resume=1; shift ;;
    --patch) patch=$2; shift 2 ;;
    --probe-net) probe_net=$2; shift 2 ;;
    --scan-args) scan_args=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
case $split in tuning|test|all) ;; *) echo "--split must be tuning, test or all" >&2; exit 2 ;; esac
if [ "$activations" = 1 ] && [ -n "$embedder" ]; then
  echo "--activations sets the views itself; leave out --embedder" >&2
  exit 2
fi
if [ -n "$scan_args" ] && [ -z "$tag" ]; then
  echo "--scan-args needs --tag, to name its rows apart" >&2
  exit 2
fi
if [ -z "$bin" ]; then
  cargo build --release --locked --quiet
  bin=$CARGO_TARGET_DIR/release/poisongate
fi
log=${QUALITY_LOG:-$CARGO_TARGET_DIR/quality}
mkdir -p "$log"
if [ "$activations" = 1 ]; then
  venv=${BENCH_VENV:-$HOME/.cache/poisongate-bench-venv}
  if ! "$venv/bin/python" -c "import numpy, sklearn" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet numpy==2.4.6 scikit-learn==1.9.1
  fi
fi

# One line per run to do: split|name|input|attack|rate|seed|dataset rows|extra arguments. The suite file
# says which attacks suit each dataset, its target, and its patch size.
plan=$(python3 - "$split" "$only" "$attacks" "$rates" "$seeds" "$blend_alpha" "$embedder" \
  "$activations" "$patch" "$probe_net" "$scan_args" "$tag" <<'EOF'
import os, shlex, subprocess, sys, tomllib
split, only, attacks, rates, seeds, alpha, embedder, activations, patch, probe_net, scan_args, tag = sys.argv[1:13]
only = set(filter(None, only.split(",")))
suite = tomllib.load(open("datasets/suite.toml", "rb"))["dataset"]
data = os.path.expanduser("~/.cache/poisongate-data")
for d in suite:
    if split != "all" and d["split"] != split:
        continue
    if only and d["name"] not in only:
        continue
    if "bundled" in d:
        inputs = [(d["name"], d["bundled"], "table")]
        if "images" in d:
            inputs.append((d["name"] + "-images", d["images"], "images"))
    else:
        fetched = subprocess.run(["bash", d["fetch"]], capture_output=True, text=True)
        if fetched.returncode != 0:
            print(f"note: {d['name']} could not be fetched, skipped: {fetched.stderr.strip()[-300:]}",
                  file=sys.stderr)
            continue
        inputs = [(d["name"], os.path.join(data, d["path"]), d["kind"])]
    for name, path, kind in inputs:
        if probe_net != "auto" and kind != "images":
            continue
        extra = []
        if d.get("label") not in (None, "label", "folder"):
            extra += ["--label", d["label"]]
        if d["kind"] == "text":
            extra += ["--text-col", d["text"]]
        if "target" in d:
            extra += ["--target", d["target"]]
        if embedder:
            extra += ["--embedder", embedder]
            name += "+" + embedder
        if activations == "1":
            name += "+activations"
        if probe_net != "auto":
            extra += ["--probe-net", probe_net]
            name += "+" + probe_net
        if scan_args:
            extra += shlex.split(scan_args)
            name += "+" + tag
        if patch:
            name += "+patch" + patch
        if float(alpha) != 0.15:
            name += "+alpha" + alpha
        for attack in attacks.split():
            if attack != "clean" and attack not in d["attacks"]:
                continue
            args = list(extra)
            if attack == "badnets" and kind != "text":
                # The digits' 8x8 images take a 2-pixel patch (3x3 would cover 14 %).
                size = "2" if name.startswith("digits-images") else str(d.get("patch", 3))
                args += ["--patch", patch or size]
            if attack == "blend":
                args += ["--alpha", alpha]
            if attack == "targeted-flip" and "source" in d:
                args += ["--source", d["source"]]
            for rate in (["0"] if attack == "clean" else rates.split()):
                for seed in seeds.split():
                    print("|".join([d["split"], name, path, attack, rate, seed, str(d["rows"]),
                                    shlex.join(args)]))
EOF
)

while IFS='|' read -r half name input attack rate seed rows extra; do
  [ -z "$name" ] && continue
  out="$log/$name~$attack~$rate~$seed.json"
  [ "$resume" = 1 ] && [ -f "$out" ] && continue
  bench_rate=$rate
  [ "$attack" = clean ] && bench_rate=0.1
  start=$(date +%s)
  if [ "$activations" = 1 ]; then
    work="$log/$name~$attack~$rate~$seed.model"
    rm -rf "$work"
    # shellcheck disable=SC2086
    if ! eval "\"$bin\" bench \"$input\" --attack $attack --rate $bench_rate --attack-seed $seed \
        --seed $seed --format json --quiet $extra --embedder raw --out \"$work\"" >/dev/null \
        2>"$out.err" || ! "$venv/bin/python" benches/activations.py "$work" --seed "$seed" \
        --rows "$rows" \
        >"$work/activations.log" 2>&1; then
      echo "note: $name $attack $rate seed $seed: activations failed: $(tail -c 300 "$out.err" \
        "$work/activations.log" 2>/dev/null)" >&2
      continue
    fi
    extra="$extra --embeddings \"$work/activations.npy\""
  fi
  # shellcheck disable=SC2086
  if ! eval "\"$bin\" bench \"$input\" --attack $attack --rate $bench_rate --attack-seed $seed \
      --seed $seed --format json --quiet $extra" >"$out.partial" 2>"$out.err"; then
    echo "note: $name $attack $rate seed $seed failed: $(tail -c 300 "$out.err")" >&2
    rm -f "$out.partial"
    continue
  fi
  mv "$out.partial" "$out"
  echo "$half $name $attack $rate seed $seed: $(( $(date +%s) - start )) s" >&2
done <<<"$plan"

python3 - "$log" "$plan" <<'EOF'
import json, os, statistics, sys
log, plan = sys.argv[1], sys.argv[2]
runs = {}
for line in plan.splitlines():
    if not line.strip():
        continue
    half, name, _, attack, rate, seed, _, _ = line.split("|", 7)
    f = os.path.join(log, f"{name}~{attack}~{rate}~{seed}.json")
    if not os.path.exists(f):
        continue
    rep = json.load(open(f))
    fused = next(m for m in rep["methods"] if m["method"] == "fused")
    runs.setdefault((half, name, attack, rate), []).append((fused, rep))
def fmt(values, digits=3):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f}±{statistics.stdev(values):.{digits}f}"
for half in ("tuning", "test"):
    keys = [k for k in runs if k[0] == half]
    if not keys:
        continue
    lines = [f"### {half} half (seeds per cell: see n)", "",
             "| dataset | attack | rate | n | flagged % | precision | recall | F1 | gate passed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for key in keys:
        _, name, attack, rate = key
        rs = runs[key]
        share = [100.0 * m["flagged"] / max(r["rows"], 1) for m, r in rs]
        clean = attack == "clean"
        passed = [m["flagged"] == 0 for m, _ in rs]
        lines.append(
            f"| {name} | {attack} | {'-' if clean else rate} | {len(rs)} | {fmt(share, 2)} | "
            f"{'-' if clean else fmt([m['precision'] for m, _ in rs])} | "
            f"{'-' if clean else fmt([m['recall'] for m, _ in rs])} | "
            f"{'-' if clean else fmt([m['f1'] for m, _ in rs])} | "
            f"{f'{sum(passed)}/{len(passed)}' if clean else '-'} |")
    text = "\n".join(lines)
    print(text + "\n")
    open(os.path.join(log, f"summary-{half}.md"), "w").write(text + "\n")
EOF
