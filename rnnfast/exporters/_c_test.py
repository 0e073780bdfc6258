"""The self-test program written beside the generated model (as keras2c does): embedded inputs and the outputs
rnnfast gave for them at export time; it exits 1 when the compiled model disagrees."""
from __future__ import annotations

import numpy as np

from ._c_arrays import array, float_literal

# Both sides compute in float32, in a different summation order and with a different libm; per element
# |got - expected| <= RTOL * |expected| + ATOL leaves room for that and nothing more.
RTOL, ATOL = 1e-4, 1e-5


def test_program(prefix: str, pipeline, x: np.ndarray, expected: np.ndarray, quantize, has_step: bool) -> str:
    P, pre = prefix.upper(), prefix
    n_seq, seq_len = x.shape[0], x.shape[1]
    ids = pipeline.takes_ids
    x_row = "test_x[n]" if ids else "&test_x[n][0][0]"
    step_x = "&test_x[n][t]" if ids else "&test_x[n][t][0]"
    seq = pipeline.returns_sequence
    run_want = "&expected[n][0][0]" if seq else "&expected[n][0]"
    step_want = "&expected[n][t][0]" if seq else "&expected[n][0]"
    step_check = "" if seq else f"if (t == {seq_len} - 1) "
    weights = f", weights stored as {quantize} (expected outputs computed with those weights)" if quantize else ""
    lines = [
        f"/* {pre}_test.c: runs {pre} on {n_seq} embedded sequence(s) of {seq_len} steps and compares with the outputs",
        f" * rnnfast computed at export time{weights}.",
        f" * Tolerance per element: |got - expected| <= {RTOL:g} * |expected| + {ATOL:g} (float32 on both sides, in a",
        " * different summation order and libm). Prints every output of run, one line per sequence and step;",
        " * exits 1 on any disagreement or unexpected status.",
        f" * Build: cc -std=c99 -O2 {pre}.c {pre}_test.c -lm",
        " */",
        "#include <math.h>", "#include <stdio.h>", "", f'#include "{pre}.h"', "",
        f"#define N_SEQ {n_seq}", f"#define SEQ_LEN {seq_len}",
        f"#define OUT {P}_OUTPUT_SIZE", f"#define RTOL {float_literal(RTOL)}",
        f"#define ATOL {float_literal(ATOL)}", "",
        array("int32_t" if ids else "float", "test_x", x), "",
        array("float", "expected", np.asarray(expected, np.float32)), "",
        "static int check(const char *what, int n, int t, const float *got, const float *want)",
        "{",
        "    int bad = 0;",
        "    for (int i = 0; i < OUT; i++) {",
        "        if (!(fabsf(got[i] - want[i]) <= RTOL * fabsf(want[i]) + ATOL)) {",
        '            fprintf(stderr, "%s: sequence %d step %d output %d: got %.9g, expected %.9g\\n", what, n, t, i,',
        "                    (double)got[i], (double)want[i]);",
        "            bad = 1;",
        "        }",
        "    }",
        "    return bad;",
        "}",
        "",
        "int main(void)",
        "{",
        f"    static {pre}_state s;",
        f"    static float y[SEQ_LEN * OUT];",
        f"    static float scratch[{P}_RUN_SCRATCH(SEQ_LEN) + 1];",
        "    int bad = 0;",
        f"    {pre}_init(&s);",
        "    for (int n = 0; n < N_SEQ; n++) {",
        f"        if ({pre}_run(&s, {x_row}, SEQ_LEN, y, scratch) != {P}_OK) {{",
        '            fprintf(stderr, "run: sequence %d refused\\n", n);',
        "            return 1;",
        "        }",
        f"        const int rows = {P}_RETURNS_SEQUENCE ? SEQ_LEN : 1;",
        "        for (int r = 0; r < rows; r++) {",
        "            for (int i = 0; i < OUT; i++) printf(\"%s%.9g\", i ? \" \" : \"\", (double)y[r * OUT + i]);",
        '            printf("\\n");',
        f'            bad |= check("run", n, r, y + r * OUT, {run_want} + r * OUT);',
        "        }",
        "    }",
    ]
    if has_step:
        lines += [
            "    /* step by step must give what run gave */",
            "    for (int n = 0; n < N_SEQ; n++) {",
            f"        {pre}_reset(&s);",
            "        for (int t = 0; t < SEQ_LEN; t++) {",
            f"            if ({pre}_step(&s, {step_x}, y) != {P}_OK) {{",
            '                fprintf(stderr, "step: sequence %d step %d refused\\n", n, t);',
            "                return 1;",
            "            }",
            f'            {step_check}bad |= check("step", n, t, y, {step_want});',
            "        }",
            "    }",
        ]
    lines += [
        "    /* refused calls */",
        f"    if ({pre}_run(&s, {x_row.replace('[n]', '[0]')}, 0, y, scratch) != {P}_ERR_ARG) {{",
        '        fprintf(stderr, "run with seq_len 0 was not refused\\n");',
        "        bad = 1;",
        "    }",
    ]
    if ids:
        lines += [
            f"    const int32_t bad_ids[2] = {{1, {P}_VOCAB_SIZE}};",
            f"    if ({pre}_run(&s, bad_ids, 2, y, scratch) != {P}_ERR_ID) {{",
            '        fprintf(stderr, "an id out of range was not refused\\n");',
            "        bad = 1;",
            "    }",
        ]
    lines += [
        f'    fprintf(stderr, "{pre}_test: %s\\n", bad ? "FAILED" : "ok");',
        "    return bad;",
        "}",
        "",
    ]
    return "\n".join(lines)
