"""The self-test program a whole-graph export writes beside the model (c_graph.py), as the chain export does
(_c_test.py): embedded inputs and the outputs rnnfast computed for them at export time; it runs `<prefix>_run` and,
for a graph with state loops, one `<prefix>_step` from a zero state, and exits 1 when the compiled code disagrees."""
from __future__ import annotations

import numpy as np

from ._c_arrays import array, float_literal
from ._c_test import ATOL, RTOL


def test_feeds(inputs: dict, states: dict, seed: int = 0) -> dict:
    """Inputs for the test program: floats drawn at random (scale 0.5), state inputs zero (so one step from the
    reset state computes what the run computes), every other type zero (a valid token id, index or flag)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, (shape, dt) in inputs.items():
        if dt == np.dtype(np.float32) and name not in states:
            feeds[name] = (rng.standard_normal(shape) * 0.5).astype(np.float32)
        else:
            feeds[name] = np.zeros(shape, dt)
    return feeds


def test_program(prefix: str, inputs: dict, outputs: dict, states: dict, names: dict, ctype, feeds: dict,
                 expected: dict, where: str) -> str:
    """The C source of `<prefix>_test.c`. inputs / outputs: name -> (shape, dtype); states: {input: output};
    names: graph name -> C identifier; ctype(dtype) -> C type; feeds / expected: name -> array."""
    pre = prefix
    lines = [f"/* {pre}_test.c: runs {pre} ({where}) on embedded inputs and compares every output with what rnnfast",
             " * computed at export time; with state loops, also one step from the reset state (which starts from",
             " * the zero state the run's state inputs hold). Floats agree when |got - expected| <= "
             f"{RTOL:g} * |expected| + {ATOL:g}",
             " * (float32 on both sides, another summation order); other types exactly. Prints the run's outputs,",
             " * one value a line; exits 1 on any disagreement or error.",
             f" * Build: the runtime units under rnnf_runtime, {pre}.c and this file; see {pre}.h.",
             " */", "#include <math.h>", "#include <stdio.h>", "", f'#include "{pre}.h"', "",
             f"#define RTOL {RTOL!r}", f"#define ATOL {ATOL!r}", ""]
    for name, (shape, dt) in inputs.items():
        lines.append(array(ctype(dt), f"in_{names[name]}", _flat(feeds[name], dt), _fmt(dt)))
    for name, (shape, dt) in outputs.items():
        lines.append(array(ctype(dt), f"want_{names[name]}", _flat(expected[name], dt), _fmt(dt)))
        lines.append(f"static {ctype(dt)} out_{names[name]}[{max(int(np.prod(shape, dtype=np.int64)), 1)}];")
    lines += ["", f"static {pre}_state st;", "",
              "static int check(const char *what, const char *name, size_t i, double got, double want, double rtol,",
              "                 double atol)", "{",
              "    if (fabs(got - want) <= rtol * fabs(want) + atol) return 0;",
              '    fprintf(stderr, "%s: output %s[%lu]: got %.9g, expected %.9g\\n", what, name, (unsigned long)i, got,'
              " want);",
              "    return 1;", "}", "", "int main(void)", "{", "    int bad = 0;", "    size_t i;",
              f"    if ({pre}_init(&st)) {{",
              f'        fprintf(stderr, "init: %s\\n", {pre}_error(&st));', "        return 1;", "    }"]
    run_args = ["&st"] + [f"in_{names[n]}" for n in inputs] + [f"out_{names[n]}" for n in outputs]
    lines += [f"    if ({pre}_run({', '.join(run_args)})) {{",
              f'        fprintf(stderr, "run: %s\\n", {pre}_error(&st));', "        return 1;", "    }"]
    for name, (shape, dt) in outputs.items():
        lines += _compare("run", names[name], f"out_{names[name]}", shape, dt)
        if dt == np.dtype(np.float32):
            lines.append(f'    for (i = 0; i < {_size(shape)}; i++) printf("%.9g\\n", (double)out_{names[name]}[i]);')
    if states:
        step_args = (["&st"] + [f"in_{names[n]}" for n in inputs if n not in states]
                     + [f"out_{names[n]}" for n in outputs if n not in states.values()])
        lines += [f"    {pre}_reset(&st);", f"    if ({pre}_step({', '.join(step_args)})) {{",
                  f'        fprintf(stderr, "step: %s\\n", {pre}_error(&st));', "        return 1;", "    }"]
        for name, (shape, dt) in outputs.items():
            if name not in states.values():
                lines += _compare("step", names[name], f"out_{names[name]}", shape, dt)
        for i, o in states.items():
            shape, dt = outputs[o]
            lines += _compare("step (state)", names[o], f"{pre}_state_{names[i]}(&st)", shape, dt)
    lines += ["    return bad;", "}", ""]
    return "\n".join(lines)


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _flat(a, dt) -> np.ndarray:
    """At least one element (ISO C has no empty arrays); bool as 0/1."""
    a = np.asarray(a).reshape(-1)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    return a if a.size else np.zeros(1, a.dtype)


def _fmt(dt):
    if dt == np.dtype(np.float32):
        return float_literal
    return lambda v: str(int(v))


def _compare(what, ident, got, shape, dt) -> list:
    tol = "RTOL, ATOL" if dt == np.dtype(np.float32) else "0.0, 0.0"
    return [f"    for (i = 0; i < {_size(shape)}; i++)",
            f'        bad |= check("{what}", "{ident}", i, (double){got}[i], (double)want_{ident}[i], {tol});']
