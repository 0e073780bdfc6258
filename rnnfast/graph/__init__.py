"""The graph IR (ir.py), its one analysis (analysis.py, infer.py, fuse.py), the lowering to the C executor
(compile.py) and the compiled graph that runs in one C call (runtime.py)."""
