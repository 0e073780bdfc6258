"""A C driver for a whole-graph export (rnnfast/exporters/c_graph.py), written by the tests and the benchmark:
reads raw input files, calls <prefix>_run or <prefix>_step, writes raw output files; `time N` prints the median
nanoseconds of N steps, `timerun N` of N runs. Every buffer is static (the driver calls no malloc either), so a link
with -Wl,--wrap=malloc proves the whole program allocates nothing."""
from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

# the chain export's flags (tests/test_export_c.py), for every unit: the runtime's units silence -Wconversion and
# -Wdouble-promotion for the library's sources they include (rnnfast/exporters/_c_runtime.py, QUIET)
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wdouble-promotion", "-Wconversion", "-Wshadow",
          "-Wstrict-prototypes"]
CTYPES = {"float32": "float", "int64": "int64_t", "int32": "int32_t", "bool": "uint8_t", "int8": "int8_t"}
ALLOCATORS = ("malloc", "calloc", "realloc", "free", "posix_memalign", "aligned_alloc")


def driver_source(prefix, export) -> str:
    names, P = export.c_names, prefix.upper()
    lines = ["#define _POSIX_C_SOURCE 200112L", "#include <stdio.h>", "#include <stdlib.h>", "#include <string.h>",
             "#include <time.h>", f'#include "{prefix}.h"', "", f"static {prefix}_state st;"]
    for n, (shape, dt) in {**export.inputs, **export.outputs}.items():
        ctype = CTYPES[dt.name]
        lines.append(f"static {ctype} b_{names[n]}[{P}_{names[n].upper()}_SIZE + 1];")
    lines += ["", "static void io(const char *dir, const char *name, int chunk, void *buf, size_t bytes, int write)",
              "{", "    char path[512];", "    FILE *f;",
              '    if (chunk >= 0) snprintf(path, sizeof path, "%s/%s.%d.bin", dir, name, chunk);',
              '    else snprintf(path, sizeof path, "%s/%s.bin", dir, name);',
              '    f = fopen(path, write ? "wb" : "rb");',
              '    if (!f || (write ? fwrite(buf, 1, bytes, f) : fread(buf, 1, bytes, f)) != bytes) {',
              '        fprintf(stderr, "cannot %s %s\\n", write ? "write" : "read", path);', "        exit(2);",
              "    }",
              "    fclose(f);", "}", ""]

    def rw(items, chunk, write):
        return [f'    io(dir, "{n}", {chunk}, b_{names[n]}, sizeof b_{names[n]} - sizeof b_{names[n]}[0], {write});'
                for n in items]

    if export.optional:
        lines += ["static int given(const char *dir, const char *name)", "{", "    char path[512];", "    FILE *f;",
                  '    snprintf(path, sizeof path, "%s/%s.bin", dir, name);', '    f = fopen(path, "rb");',
                  "    if (f) fclose(f);", "    return f != NULL;", "}", ""]
    # an optional input whose file is missing is passed as NULL (its default)
    run_in = [f"(given(dir, \"{n}\") ? b_{names[n]} : NULL)" if n in export.optional else f"b_{names[n]}"
              for n in export.inputs]
    step_in = [n for n in export.inputs if n not in export.states]
    step_out = [n for n in export.outputs if n not in export.states.values()]
    run_args = ", ".join(["&st"] + run_in + [f"b_{names[n]}" for n in export.outputs])
    step_args = ", ".join(["&st"] + [f"b_{names[n]}" for n in step_in + step_out])
    lines += ["static int cmp(const void *a, const void *b)", "{",
              "    const double x = *(const double *)a, y = *(const double *)b;", "    return (x > y) - (x < y);",
              "}", "", "static double ns[100000];", ""]
    lines += ["int main(int argc, char **argv)", "{", "    const char *dir = argv[1];", "    int status;",
              "    if (argc < 3) return 2;", f"    status = {prefix}_init(&st);",
              f'    if (status) {{ fprintf(stderr, "init: %s\\n", {prefix}_error(&st)); return 1; }}',
              '    if (!strcmp(argv[2], "run")) {']
    lines += [f'        if (given(dir, "{n}"))' + line[3:] if n in export.optional else line
              for n, line in zip(export.inputs, rw(export.inputs, -1, 0))]
    lines += [f"        status = {prefix}_run({run_args});",
              f'        if (status) {{ fprintf(stderr, "run: %s\\n", {prefix}_error(&st)); return 1; }}']
    lines += rw(export.outputs, -1, 1)
    lines += ["        return 0;", "    }", '    if (!strcmp(argv[2], "timerun")) {',
              "        struct timespec t0, t1;", "        int c, n = argc > 3 ? atoi(argv[3]) : 1;",
              "        if (n < 1 || n > 100000) return 2;"]
    lines += rw(export.inputs, -1, 0)
    lines += ["        for (c = 0; c < n; c++) {", "            clock_gettime(CLOCK_MONOTONIC, &t0);",
              f"            status = {prefix}_run({run_args});",
              "            clock_gettime(CLOCK_MONOTONIC, &t1);",
              "            if (status) return 1;",
              "            ns[c] = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);",
              "        }", "        qsort(ns, (size_t)n, sizeof ns[0], cmp);",
              '        printf("%.0f\\n", ns[n / 2]);', "        return 0;", "    }"]
    if export.states:
        lines += ["    int c, n = argc > 3 ? atoi(argv[3]) : 1;", '    if (!strcmp(argv[2], "step")) {',
                  "        for (c = 0; c < n; c++) {"]
        lines += ["    " + x for x in rw(step_in, "c", 0)]
        lines += [f"            status = {prefix}_step({step_args});",
                  f'            if (status) {{ fprintf(stderr, "step: %s\\n", {prefix}_error(&st)); return 1; }}']
        lines += ["    " + x for x in rw(step_out, "c", 1)]
        lines += ["        }"]
        for i in export.states:
            lines.append(f'        io(dir, "final_{i}", -1, (void *){prefix}_state_{names[i]}(&st), '
                         f"sizeof b_{names[i]} - sizeof b_{names[i]}[0], 1);")
        lines += ["        return 0;", "    }", '    if (!strcmp(argv[2], "time")) {',
                  "        struct timespec t0, t1;", "        if (n > 100000) n = 100000;"]
        lines += ["    " + x for x in rw(step_in, 0, 0)]
        lines += ["        for (c = 0; c < n; c++) {", "            clock_gettime(CLOCK_MONOTONIC, &t0);",
                  f"            status = {prefix}_step({step_args});",
                  "            clock_gettime(CLOCK_MONOTONIC, &t1);",
                  "            if (status) return 1;",
                  "            ns[c] = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);",
                  "        }", "        qsort(ns, (size_t)n, sizeof ns[0], cmp);",
                  '        printf("%.0f\\n", ns[n / 2]);',
                  "        return 0;", "    }"]
    lines += ["    return 2;", "}", ""]
    return "\n".join(lines)


def _cc(args):
    r = subprocess.run(["gcc", *args], capture_output=True, text=True)
    assert r.returncode == 0, f"gcc {' '.join(args)}: {r.stderr}"


def compile_runtime(export, workdir: Path, isa=()) -> list:
    """The runtime's units (the same for every export) as objects, strict flags, two compilers at a time. `isa`:
    target flags (-mavx2 ...), or () for the portable reference kernels."""
    objs = Path(workdir) / ("rt" + "".join(isa).replace("-", "_"))
    objs.mkdir(parents=True, exist_ok=True)
    inc = [f"-I{d}" for d in export.includes]
    jobs = [[*STRICT, "-O2", *isa, *inc, "-c", str(src), "-o", str(objs / (Path(src).stem + ".o"))]
            for src in export.units]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(_cc, jobs))
    return [Path(j[-1]) for j in jobs]


def link_driver(export, prefix, workdir: Path, runtime_objs, isa=()) -> Path:
    """The generated source and the driver, linked with the runtime's
    objects and -Wl,--wrap for every allocator: a reference to one from any object would not link."""
    out = Path(workdir)
    inc = [f"-I{d}" for d in export.includes]
    model_obj = out / f"{prefix}{''.join(isa).replace('-', '_')}.o"
    _cc([*STRICT, "-O2", *isa, *inc, "-c", str(export.source), "-o", str(model_obj)])
    driver = out / "driver.c"
    driver.write_text(driver_source(prefix, export))
    exe = out / f"driver{''.join(isa).replace('-', '_')}"
    wraps = "-Wl," + ",".join(f"--wrap={f}" for f in ALLOCATORS)
    _cc([*STRICT, "-O2", *isa, *inc, str(driver), str(model_obj), *map(str, runtime_objs), wraps, "-lm", "-o",
         str(exe)])
    return exe


def link_test(export, workdir: Path, runtime_objs, isa=(), test=None) -> Path:
    """The export's own test program (`<prefix>_test.c`, or `test`) linked as link_driver links the driver."""
    out = Path(workdir)
    test = Path(test or export.test)
    inc = [f"-I{d}" for d in export.includes]
    exe = out / (test.stem + "".join(isa).replace("-", "_"))
    wraps = "-Wl," + ",".join(f"--wrap={f}" for f in ALLOCATORS)
    _cc([*STRICT, "-O2", *isa, *inc, str(export.source), str(test), *map(str, runtime_objs), wraps, "-lm", "-o",
         str(exe)])
    return exe


def write_inputs(workdir: Path, feeds: dict, chunk=None):
    for name, value in feeds.items():
        suffix = "" if chunk is None else f".{chunk}"
        np.ascontiguousarray(value).tofile(Path(workdir) / f"{name}{suffix}.bin")


def read_output(workdir: Path, name, shape, dtype, chunk=None):
    suffix = "" if chunk is None else f".{chunk}"
    return np.fromfile(Path(workdir) / f"{name}{suffix}.bin", dtype=dtype).reshape(shape)
