"""A plain random-mutation fuzz driver (no coverage feedback, no compiler needed): a worker process mutates the seed
inputs and feeds them to one target; the parent restarts it when it crashes (a signal) or stops making progress
(a hang), keeping the input that did it. Inputs that made a target raise what it must not are kept too.

The parent is what `run.py` calls; the worker is `python -m tests.fuzz.plain --worker TARGET ...`."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import time
import traceback
from pathlib import Path

INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 2 ** 63 - 1, 2 ** 64 - 1]
HANG_SECONDS = 20  # no execution finished for this long: a hang
WORKER_MEMORY = 3 << 30  # address-space limit of a worker: a memory bomb fails there instead of swapping



def child_path(checkout: str) -> list:
    """A worker's PYTHONPATH: the rnnfast this process imported (an installed package, or the checkout when it is
    installed in place) before the checkout that holds `tests.fuzz`, whose rnnfast/ has no built extension after a
    plain `pip install .`; then the caller's own."""
    import rnnfast

    home = str(Path(rnnfast.__file__).resolve().parents[1])
    return [home, checkout] + [p for p in [os.environ.get("PYTHONPATH")] if p]

def mutate(data: bytes, rng: random.Random, seeds: list) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 3, 4, 8))):
        kind = rng.randrange(7)
        pos = rng.randrange(len(buf)) if buf else 0
        if kind == 0 and buf:  # flip a bit
            buf[pos] ^= 1 << rng.randrange(8)
        elif kind == 1 and buf:  # a random byte
            buf[pos] = rng.randrange(256)
        elif kind == 2:  # an interesting integer, 1/2/4/8 bytes, either byte order
            width = rng.choice((1, 2, 4, 8))
            value = rng.choice(INTERESTING) & ((1 << 8 * width) - 1)
            buf[pos:pos + width] = value.to_bytes(width, rng.choice(("little", "big")))
        elif kind == 3 and buf:  # delete a run
            del buf[pos:pos + rng.randrange(1, 64)]
        elif kind == 4:  # duplicate a run
            run = buf[pos:pos + rng.randrange(1, 64)]
            buf[pos:pos] = run
        elif kind == 5:  # splice in a run of another seed
            other = rng.choice(seeds)
            if other:
                start = rng.randrange(len(other))
                buf[pos:pos + rng.randrange(64)] = other[start:start + rng.randrange(1, 256)]
        elif kind == 6 and buf:  # truncate
            del buf[pos:]
    return bytes(buf)


def worker(target: str, seconds: float, seed: int, state: Path, min_execs: int = 0):
    """Run until `seconds` pass and at least min_execs inputs ran (a busy machine must not turn a smoke run into
    no run); `state/current` holds the input being run, `state/stats.json` the executions."""
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))
    import warnings

    warnings.simplefilter("ignore")
    from tests.fuzz.targets import TARGETS, Finding, run_one

    seeds = [s for s in TARGETS[target][1]() if s]
    rng = random.Random(seed)
    execs, end, last_stats = 0, time.monotonic() + seconds, 0.0
    current = state / "current"
    while time.monotonic() < end or execs < min_execs:
        data = mutate(rng.choice(seeds), rng, seeds)
        fd = os.open(current, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.write(fd, data)
        os.close(fd)
        try:
            run_one(target, data)
        except Finding:
            keep(state, "exception", data, traceback.format_exc())
        execs += 1
        if time.monotonic() - last_stats > 0.5:
            (state / "stats.json").write_text(json.dumps({"execs": execs}))
            last_stats = time.monotonic()
    (state / "stats.json").write_text(json.dumps({"execs": execs}))
    current.unlink(missing_ok=True)


def keep(state: Path, kind: str, data: bytes, why: str) -> Path:
    digest = hashlib.sha1(data).hexdigest()[:12]
    path = state / f"{kind}-{digest}"
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(why)
    return path


def fuzz(target: str, seconds: float, state: Path, seed: int = 0, min_execs: int = 0) -> dict:
    """Run one target for `seconds` (and at least min_execs inputs) in worker processes; {"execs", "findings":
    [paths], "restarts"}."""
    state.mkdir(parents=True, exist_ok=True)
    execs, restarts, end = 0, 0, time.monotonic() + seconds
    from .targets import FUZZ_MAX_MEMORY

    paths = child_path(str(Path(__file__).resolve().parents[2]))
    env = dict(os.environ, RNNFAST_MAX_MEMORY=FUZZ_MAX_MEMORY, PYTHONPATH=os.pathsep.join(paths))
    while time.monotonic() < end - 0.5:
        stats = state / "stats.json"
        stats.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "tests.fuzz.plain", "--worker", target, "--seconds",
               f"{end - time.monotonic():.1f}", "--seed", str(seed + restarts), "--state", str(state),
               "--min-execs", str(max(min_execs - execs, 0))]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=state)
        hung = False
        while proc.poll() is None:
            time.sleep(0.2)
            current = state / "current"
            if current.exists() and time.time() - current.stat().st_mtime > HANG_SECONDS:
                proc.kill()
                proc.wait()
                hung = True
        err = proc.stderr.read().decode("utf-8", "replace")
        if stats.exists():
            execs += json.loads(stats.read_text())["execs"]
        current = state / "current"
        if hung or proc.returncode != 0:
            data = current.read_bytes() if current.exists() else b""
            kind = "hang" if hung else f"crash{-proc.returncode if proc.returncode < 0 else proc.returncode}"
            keep(state, kind, data, err[-4000:])
            restarts += 1
        current.unlink(missing_ok=True)
        if not hung and proc.returncode == 0:
            break  # the worker ran its time (and its minimum) out
    findings = sorted(str(p) for p in state.iterdir() if p.name.startswith(("exception-", "hang-", "crash"))
                      and p.suffix != ".txt")
    return {"execs": execs, "findings": findings, "restarts": restarts}


def _main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--min-execs", type=int, default=0)
    args = ap.parse_args()
    worker(args.worker, args.seconds, args.seed, args.state, args.min_execs)


if __name__ == "__main__":
    _main()
