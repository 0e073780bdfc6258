"""Fuzz every loader: `python -m tests.fuzz.run --minutes N [--target NAME ...] [--plain] [--out DIR]`.

Each target runs for N minutes with atheris when it is installed (coverage-guided; corpus kept in DIR/<target>/corpus,
seeded from the fixtures), else with the plain random-mutation driver (plain.py). Prints the executions and the
findings (inputs kept in DIR/<target>/) of each target; exits 1 if there was any finding."""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz import plain
from tests.fuzz.targets import FUZZ_MAX_MEMORY, TARGETS

ROOT = Path(__file__).resolve().parents[2]


def have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def run_atheris(target: str, seconds: float, state: Path) -> dict:
    corpus = state / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(TARGETS[target][1]()):
        (corpus / f"seed-{i}").write_bytes(data)
    paths = plain.child_path(str(ROOT))
    env = dict(os.environ, RNNFAST_MAX_MEMORY=FUZZ_MAX_MEMORY, PYTHONPATH=os.pathsep.join(paths))
    cmd = [sys.executable, "-m", "tests.fuzz.atheris_target", target, f"-max_total_time={int(seconds)}",
           f"-timeout={plain.HANG_SECONDS}", "-rss_limit_mb=3072", "-print_final_stats=1",
           f"-artifact_prefix={state}/", str(corpus)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 600, cwd=state)
    log = proc.stdout + proc.stderr
    (state / "libfuzzer.log").write_text(log)
    execs = sum(int(n) for n in re.findall(r"stat::number_of_executed_units:\s*(\d+)", log))
    if not execs:
        done = re.findall(r"#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)", log)
        execs = int(done[-1]) if done else 0
    findings = sorted(str(p) for p in state.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-", "leak-")))
    return {"execs": execs, "findings": findings}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, help="per target, instead of --minutes")
    ap.add_argument("--target", action="append", choices=sorted(TARGETS))
    ap.add_argument("--plain", action="store_true", help="the plain driver even when atheris is installed")
    ap.add_argument("--out", type=Path, help="where inputs and findings are kept (default: a temporary folder)")
    args = ap.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else 60 * args.minutes
    out = args.out or Path(tempfile.mkdtemp(prefix="rnnfast-fuzz-"))
    engine = "plain" if args.plain or not have_atheris() else "atheris"
    results = {}
    for target in args.target or list(TARGETS):
        start = time.monotonic()
        state = out / target
        r = (plain.fuzz(target, seconds, state) if engine == "plain" else run_atheris(target, seconds, state))
        r["seconds"] = round(time.monotonic() - start, 1)
        results[target] = r
        print(f"{target:13s} {engine:7s} {r['execs']:9d} execs in {r['seconds']:6.1f} s, "
              f"{len(r['findings'])} finding(s) {' '.join(r['findings'])}", flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"results: {out / 'results.json'}")
    return 1 if any(r["findings"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
