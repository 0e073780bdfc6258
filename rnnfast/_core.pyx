# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Thin binding of the C engine: plain buffers in, status codes checked in one place, GIL released while
the C code runs. Everything about shapes and formats is decided in Python (rnnfast/engine.py); this file
only checks what it must to keep the C side memory-safe."""
from libc.stdint cimport int32_t, uint8_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset

import threading

import numpy as np

from rnnfast._core cimport *

Y_SEQ_DIR_BATCH = 0
Y_SEQ_BATCH_DIR = 1


class EngineError(RuntimeError):
    """The C engine refused a call that the Python layer should have caught first (a bug in rnnfast)."""


cdef int check(rnnf_status status, str what) except -1:
    if status == RNNF_OK:
        return 0
    msg = f"{what}: {rnnf_status_str(status).decode()}"
    if status == RNNF_ERR_NOMEM:
        raise MemoryError(msg)
    if status == RNNF_ERR_ISA:
        raise RuntimeError(msg)
    if status in (RNNF_ERR_ARG, RNNF_ERR_SHAPE, RNNF_ERR_UNSUPPORTED):
        raise ValueError(msg)
    raise EngineError(msg)


def isa_compiled():
    return rnnf_isa_compiled().decode().split(",")


def isa_supported():
    return rnnf_isa_supported().decode().split(",")


def isa_selected():
    return rnnf_isa_selected().decode()


def isa_select(str name):
    check(rnnf_isa_select(name.encode()), f"RNNFAST_ISA={name!r} (compiled: {rnnf_isa_compiled().decode()}, "
                                             f"supported here: {rnnf_isa_supported().decode()})")


def activation(int kind, float alpha, float beta, x):
    """act(x) through the selected kernel table, for testing the vectorized activations."""
    cdef rnnf_activation act
    act.kind = kind
    act.alpha = alpha
    act.beta = beta
    src = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    out = np.empty_like(src)
    cdef const float[::1] xv = src
    cdef float[::1] yv = out
    if src.shape[0] == 0:
        return out
    check(rnnf_activation_apply(&act, &xv[0], &yv[0], xv.shape[0]), "applying an activation")
    return out


def openmp_enabled():
    return bool(rnnf_openmp_enabled())


def default_threads():
    return rnnf_default_threads()


cdef const float *fptr(object arr) except? NULL:
    """Pointer to a C-contiguous float32 array, or NULL for None."""
    cdef const float[::1] view
    if arr is None:
        return NULL
    view = arr.reshape(-1)
    if view.shape[0] == 0:
        return NULL
    return &view[0]


cdef const void *bptr(object arr) except? NULL:
    """Pointer to the bytes of a C-contiguous array of any dtype, or NULL for None."""
    cdef const unsigned char[::1] view
    if arr is None:
        return NULL
    view = arr.reshape(-1).view(np.uint8)
    if view.shape[0] == 0:
        return NULL
    return &view[0]


cdef class CModel:
    """Packed weights of one or more stacked recurrent layers (rnnf_model). Immutable once built."""
    cdef rnnf_model *ptr
    cdef readonly list layers     # per layer: dict(cell, n_dirs, input_size, hidden_size, out_size)
    cdef rnnf_state *cached
    cdef int cached_batch
    cdef object lock

    def __cinit__(self, list descs):
        cdef int n = len(descs)
        cdef rnnf_layer_desc *c_descs
        cdef int i, d, a
        self.ptr = NULL
        self.cached = NULL
        self.lock = threading.Lock()
        if n == 0:
            raise ValueError("a model needs at least one recurrent layer")
        c_descs = <rnnf_layer_desc *>calloc(n, sizeof(rnnf_layer_desc))
        if c_descs == NULL:
            raise MemoryError()
        keep = []
        try:
            self.layers = []
            for i, desc in enumerate(descs):
                arrays = {k: (None if desc[k] is None else np.ascontiguousarray(desc[k], dtype=np.float32))
                          for k in ("w_ih", "w_hh", "b_ih", "b_hh", "peepholes", "w_hr")}
                keep.append(arrays)
                c_descs[i].cell = desc["cell"]
                c_descs[i].n_dirs = desc["n_dirs"]
                c_descs[i].reverse = desc["reverse"]
                c_descs[i].input_size = desc["input_size"]
                c_descs[i].hidden_size = desc["hidden_size"]
                c_descs[i].proj_size = desc["proj_size"]
                c_descs[i].w_ih = fptr(arrays["w_ih"])
                c_descs[i].w_hh = fptr(arrays["w_hh"])
                c_descs[i].b_ih = fptr(arrays["b_ih"])
                c_descs[i].b_hh = fptr(arrays["b_hh"])
                c_descs[i].peepholes = fptr(arrays["peepholes"])
                c_descs[i].w_hr = fptr(arrays["w_hr"])
                for d, acts in enumerate(desc["activations"]):
                    for a, (kind, alpha, beta) in enumerate(acts):
                        c_descs[i].act[d][a].kind = kind
                        c_descs[i].act[d][a].alpha = alpha
                        c_descs[i].act[d][a].beta = beta
                c_descs[i].clip = desc["clip"]
                c_descs[i].input_forget = desc["input_forget"]
                c_descs[i].linear_before_reset = desc["linear_before_reset"]
                c_descs[i].weight_dtype = desc.get("weight_dtype", 0)
                q = desc.get("qweights")
                if c_descs[i].weight_dtype != 0:
                    stored = {k: (np.ascontiguousarray(v[0]), None if v[1] is None else
                                  np.ascontiguousarray(v[1], dtype=np.float32)) for k, v in q.items()}
                    keep.append(stored)
                    c_descs[i].w_ih = c_descs[i].w_hh = c_descs[i].w_hr = NULL
                    c_descs[i].q_ih = bptr(stored["w_ih"][0])
                    c_descs[i].q_hh = bptr(stored["w_hh"][0])
                    c_descs[i].s_ih = fptr(stored["w_ih"][1])
                    c_descs[i].s_hh = fptr(stored["w_hh"][1])
                    if "w_hr" in stored:
                        c_descs[i].q_hr = bptr(stored["w_hr"][0])
                        c_descs[i].s_hr = fptr(stored["w_hr"][1])
                self.layers.append({k: desc[k] for k in ("cell", "n_dirs", "input_size", "hidden_size")}
                                   | {"out_size": desc["proj_size"] or desc["hidden_size"]})
            check(rnnf_model_create(c_descs, n, &self.ptr), "building the C model")
        finally:
            free(c_descs)

    def __dealloc__(self):
        if self.cached != NULL:
            rnnf_state_free(self.cached)
        if self.ptr != NULL:
            rnnf_model_free(self.ptr)

    cdef rnnf_state *borrow_state(self, int batch, bint *owned) except NULL:
        """The cached state when it is free (the usual case), else a fresh one for a concurrent caller."""
        cdef rnnf_state *st = NULL
        if self.lock.acquire(False):
            owned[0] = False
            if self.cached != NULL and self.cached_batch != batch:
                rnnf_state_free(self.cached)
                self.cached = NULL
            if self.cached == NULL:
                status = rnnf_state_create(self.ptr, batch, &self.cached)
                if status != RNNF_OK:
                    self.lock.release()
                    check(status, "creating the run state")
                self.cached_batch = batch
            return self.cached
        owned[0] = True
        check(rnnf_state_create(self.ptr, batch, &st), "creating the run state")
        return st

    def run(self, x, sequence_lens=None, mask=None, bint mask_zero_output=False, initial_h=None, initial_c=None,
            bint want_y=True, int y_layout=0, int n_threads=0):
        """x float32 [seq_len, batch, input_size] C-contiguous (checked by the caller). Returns
        (y or None, [y_h per layer], [y_c per layer or None])."""
        cdef const float[:, :, ::1] xv = x
        cdef int T = xv.shape[0], B = xv.shape[1], L = len(self.layers)
        cdef rnnf_run_args args
        cdef const int32_t[::1] lens_v
        cdef const uint8_t[::1] mask_v
        cdef float[::1] out_v
        cdef const float **h0 = NULL
        cdef const float **c0 = NULL
        cdef float **yh = NULL
        cdef float **yc = NULL
        cdef rnnf_state *st
        cdef bint owned = False
        cdef rnnf_status status
        if xv.shape[2] != self.layers[0]["input_size"]:
            raise ValueError(f"x has {xv.shape[2]} features, the model takes {self.layers[0]['input_size']}")
        memset(&args, 0, sizeof(args))
        args.seq_len = T
        args.batch = B
        args.x = &xv[0, 0, 0]
        args.mask_zero_output = mask_zero_output
        args.y_layout = y_layout
        args.n_threads = n_threads
        if sequence_lens is not None:
            lens_v = sequence_lens
            if lens_v.shape[0] != B:
                raise ValueError(f"sequence_lens has {lens_v.shape[0]} entries for a batch of {B}")
            args.sequence_lens = &lens_v[0]
        if mask is not None:
            mask_v = mask.reshape(-1)
            if mask_v.shape[0] != T * B:
                raise ValueError(f"mask has {mask_v.shape[0]} entries, expected seq_len*batch = {T * B}")
            args.mask = &mask_v[0]
        last = self.layers[len(self.layers) - 1]
        y = None
        if want_y:
            shape = ((T, last["n_dirs"], B, last["out_size"]) if y_layout == Y_SEQ_DIR_BATCH
                     else (T, B, last["n_dirs"] * last["out_size"]))
            y = np.empty(shape, np.float32)
            out_v = y.reshape(-1)
            args.y = &out_v[0]
        y_h = [np.empty((l["n_dirs"], B, l["out_size"]), np.float32) for l in self.layers]
        y_c = [np.empty((l["n_dirs"], B, l["hidden_size"]), np.float32) if l["cell"] == 2 else None
               for l in self.layers]
        h0 = <const float **>calloc(L, sizeof(float *))
        c0 = <const float **>calloc(L, sizeof(float *))
        yh = <float **>calloc(L, sizeof(float *))
        yc = <float **>calloc(L, sizeof(float *))
        try:
            if h0 == NULL or c0 == NULL or yh == NULL or yc == NULL:
                raise MemoryError()
            for i, lay in enumerate(self.layers):
                if initial_h is not None and initial_h[i] is not None:
                    if initial_h[i].shape != (lay["n_dirs"], B, lay["out_size"]):
                        raise ValueError(f"initial_h of layer {i} has shape {initial_h[i].shape}, expected "
                                         f"{(lay['n_dirs'], B, lay['out_size'])}")
                    h0[i] = fptr(initial_h[i])
                if initial_c is not None and initial_c[i] is not None:
                    if initial_c[i].shape != (lay["n_dirs"], B, lay["hidden_size"]):
                        raise ValueError(f"initial_c of layer {i} has shape {initial_c[i].shape}, expected "
                                         f"{(lay['n_dirs'], B, lay['hidden_size'])}")
                    c0[i] = fptr(initial_c[i])
                out_v = y_h[i].reshape(-1)
                yh[i] = &out_v[0]
                if y_c[i] is not None:
                    out_v = y_c[i].reshape(-1)
                    yc[i] = &out_v[0]
            args.initial_h = h0
            args.initial_c = c0
            args.y_h = yh
            args.y_c = yc
            st = self.borrow_state(B, &owned)
            with nogil:
                status = rnnf_run(self.ptr, st, &args)
            if owned:
                rnnf_state_free(st)
            else:
                self.lock.release()
            check(status, "running the model")
        finally:
            free(h0)
            free(c0)
            free(yh)
            free(yc)
        return y, y_h, y_c


cdef class CStream:
    """A state that persists between calls, for step-by-step inference (rnnf_step)."""
    cdef CModel model
    cdef rnnf_state *st
    cdef readonly int batch
    cdef readonly int input_size
    cdef readonly int output_size

    def __cinit__(self, CModel model, int batch):
        self.st = NULL
        self.model = model
        self.batch = batch
        self.input_size = model.layers[0]["input_size"]
        last = model.layers[len(model.layers) - 1]
        self.output_size = last["out_size"] * last["n_dirs"]
        check(rnnf_state_create(model.ptr, batch, &self.st), "creating the stream state")

    def __dealloc__(self):
        if self.st != NULL:
            rnnf_state_free(self.st)

    def step(self, x, out, int n_threads=0):
        """x float32 [batch, input_size], out float32 [batch, output_size], both C-contiguous."""
        cdef const float[:, ::1] xv = x
        cdef float[:, ::1] yv = out
        cdef rnnf_status status
        if xv.shape[0] != self.batch or xv.shape[1] != self.input_size:
            raise ValueError(f"x has shape {tuple(x.shape)}, expected {(self.batch, self.input_size)}")
        if yv.shape[0] != self.batch or yv.shape[1] != self.output_size:
            raise ValueError(f"out has shape {tuple(out.shape)}, expected {(self.batch, self.output_size)}")
        with nogil:
            status = rnnf_step(self.model.ptr, self.st, &xv[0, 0], &yv[0, 0], n_threads)
        check(status, "stepping the stream")

    def reset(self, rows=None):
        cdef const int32_t[::1] rv
        if rows is None:
            check(rnnf_state_reset(self.st, NULL, 0), "resetting the stream")
            return
        rv = np.ascontiguousarray(rows, dtype=np.int32)
        if rv.shape[0] == 0:
            return
        check(rnnf_state_reset(self.st, &rv[0], rv.shape[0]), f"resetting rows {list(rows)} of a batch of {self.batch}")

    def get(self, int layer, bint which_c):
        lay = self.model.layers[layer]
        arr = np.empty((lay["n_dirs"], self.batch, lay["hidden_size"] if which_c else lay["out_size"]), np.float32)
        cdef float[::1] v = arr.reshape(-1)
        check(rnnf_state_get(self.st, layer, which_c, &v[0]), f"reading the state of layer {layer}")
        return arr

    def set(self, int layer, bint which_c, value):
        lay = self.model.layers[layer]
        shape = (lay["n_dirs"], self.batch, lay["hidden_size"] if which_c else lay["out_size"])
        arr = np.ascontiguousarray(value, dtype=np.float32)
        if arr.shape != shape:
            raise ValueError(f"state {'c' if which_c else 'h'} of layer {layer} must have shape {shape}, got {arr.shape}")
        cdef const float[::1] v = arr.reshape(-1)
        check(rnnf_state_set(self.st, layer, which_c, &v[0]), f"setting the state of layer {layer}")
