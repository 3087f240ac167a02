"""The pre-training-gate example runs, passes clean data and stops poisoned data."""

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gate_before_dataloader.py"


def run(*args):
    return subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True)


def test_the_clean_digits_pass_the_gate():
    done = run()
    assert done.returncode == 0, done.stderr
    assert "gate passed: 1797 samples" in done.stdout


def test_a_planted_trigger_stops_training():
    done = run("--poison")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "gate failed" in done.stdout and "suspected of poisoning" in done.stdout
    assert "DataLoader ready" not in done.stdout
