#!/usr/bin/env bash
# The hostile-input corpus (issue 17): generates every case (tests/corpus/make.py, in a venv
# from PyPI), runs `poisongate scan` on each under a 10 s and 1 GiB limit, and checks the
# outcome the manifest asks for. Never allowed: a panic, a hang (10 s), more than 1 GiB, or an
# input changed by the run (each input is hashed before and after). Prints one line per
# failure and a summary: cases, panics, the slowest and the most memory-hungry case.
# Usage: bash tests/corpus/run.sh [BINARY]   (default: the debug build)
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/poisongate-target}
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --quiet --locked --bin poisongate
  bin=$CARGO_TARGET_DIR/debug/poisongate
fi
venv=${CORPUS_VENV:-$HOME/.cache/poisongate-corpus-venv}
pins="numpy==2.4.6 pyarrow==25.0.1 pillow==12.3.0"
if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]; then
  python3 -m venv "$venv"
  # shellcheck disable=SC2086
  "$venv/bin/pip" install --quiet $pins >&2
  echo "$pins" >"$venv/.pins"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" tests/corpus/make.py "$work" >/dev/null
"$venv/bin/python" - "$work" "$bin" <<'PY'
import hashlib, json, os, resource, shutil, subprocess, sys, time
work, binary = sys.argv[1], sys.argv[2]
cases = json.load(open(f"{work}/manifest.json"))
LIMIT_S, LIMIT_B = 10, 1 << 30

def fingerprint(path):
    out = []
    for root, dirs, files in os.walk(path, followlinks=False):
        for f in sorted(files):
            p = os.path.join(root, f)
            if os.path.islink(p):
                out.append((p, "link", os.readlink(p)))
                continue
            st = os.stat(p)
            try:
                with open(p, "rb") as fh:
                    out.append((p, st.st_mtime_ns, hashlib.sha256(fh.read()).hexdigest()))
            except PermissionError:  # an unreadable case, when this does not run as root
                out.append((p, st.st_mtime_ns, st.st_size, st.st_mode))
    if os.path.isfile(path):
        st = os.stat(path)
        with open(path, "rb") as fh:
            out.append((path, st.st_mtime_ns, hashlib.sha256(fh.read()).hexdigest()))
    return sorted(out)

def limit():
    resource.setrlimit(resource.RLIMIT_AS, (4 * LIMIT_B, 4 * LIMIT_B))

# Cases marked "unprivileged" (unreadable files) run as `nobody` when this runs as root, since
# root reads a mode-000 file; the binary and the work folder are made reachable for it.
AS_NOBODY = []
if os.geteuid() == 0 and shutil.which("setpriv"):
    AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    shutil.copy(binary, os.path.join(work, "poisongate"))
    os.chmod(work, 0o755)
    os.makedirs(os.path.join(work, "out"), exist_ok=True)
    os.chmod(os.path.join(work, "out"), 0o777)
    for root, _, _ in os.walk(os.path.join(work, "cases")):
        if os.stat(root).st_mode & 0o777:  # leaves the unreadable cases' mode-000 folders
            os.chmod(root, 0o755)

failures, stats = [], []
# The pickles' __reduce__ would write this file if anything ran them.
PWNED = "/tmp/poisongate-corpus-pwned"
if os.path.exists(PWNED):
    os.remove(PWNED)
for c in cases:
    path = os.path.join(work, c["input"])
    before = fingerprint(path)
    extra = [os.path.join(work, a) if a.startswith("cases/") else a for a in c["args"]]
    run_as, exe = [], binary
    if c.get("unprivileged") and AS_NOBODY:
        run_as, exe = AS_NOBODY, os.path.join(work, "poisongate")
    cmd = ["/usr/bin/time", "-f", "%M", *run_as, exe, "scan", path, "--quiet", "--format", "json",
           "--out", os.path.join(work, "out", c["name"].replace("/", "_")), *extra]
    start = time.monotonic()
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=LIMIT_S + 5, preexec_fn=limit)
        secs = time.monotonic() - start
        code = done.returncode
        stderr = done.stderr.decode("utf-8", "replace")
        rss_kb = int(stderr.strip().splitlines()[-1]) if stderr.strip().splitlines()[-1].isdigit() else 0
    except subprocess.TimeoutExpired:
        failures.append(f"{c['name']}: hung (over {LIMIT_S} s)")
        continue
    stats.append((secs, rss_kb, c["name"]))
    problems = []
    if "panicked" in stderr or code == 101 or code < 0:
        problems.append(f"panic or signal (exit {code})")
    if secs > LIMIT_S:
        problems.append(f"took {secs:.1f} s")
    if rss_kb * 1024 > LIMIT_B:
        problems.append(f"used {rss_kb // 1024} MiB")
    expect = c["expect"]
    if expect == "error":
        named = c.get("names") or os.path.basename(path)
        if code != 2:
            problems.append(f"expected an error (exit 2), got exit {code}")
        elif named not in stderr:
            problems.append(f"the error does not name {named}: {stderr.strip()[:200]}")
    elif expect == "gate" and code not in (0, 1):
        problems.append(f"expected a report (exit 0 or 1), got exit {code}: {stderr.strip()[:300]}")
    elif expect == "either" and code not in (0, 1, 2):
        problems.append(f"exit {code}")
    if len(stderr) > 64 << 10:
        problems.append(f"an error message of {len(stderr)} bytes")
    if "exit" in c and code != c["exit"]:
        problems.append(f"expected exit {c['exit']}, got exit {code}: {stderr.strip()[:300]}")
    if fingerprint(path) != before:
        problems.append("the input was changed")
    if problems:
        failures.append(f"{c['name']}: " + "; ".join(problems))

if os.path.exists(PWNED):
    failures.append("a pickle's __reduce__ ran: the .pth reader executed code")
for f in failures:
    print("FAIL", f)
slow = max(stats) if stats else (0, 0, "-")
big = max(stats, key=lambda s: s[1]) if stats else (0, 0, "-")
panics = sum("panic" in f for f in failures)
print(f"corpus: {len(cases)} cases, {len(failures)} failed, {panics} panics; slowest {slow[2]} "
      f"{slow[0]:.2f} s; most memory {big[2]} {big[1] // 1024} MiB")
sys.exit(1 if failures else 0)
PY
