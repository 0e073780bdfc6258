"""The one timing loop, shared by the report and the torch worker process (which cannot import rnnfast or onnx),
so every engine is timed by the same code; and the one way the bench scripts print a time."""
import time


def time_block(fn, seconds: float) -> list:
    """Call fn back to back for about `seconds`; return the time of each call. The first call is not timed:
    after another engine's block it wakes this engine's threads and reloads its weights into the caches."""
    fn()
    times = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if t1 - start >= seconds:
            return times


def fmt_time(s) -> str:
    """Seconds as µs below a millisecond, else ms; "–" for a time not measured."""
    if s is None:
        return "–"
    return f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"
