# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Thin binding of the C engine: plain buffers in, status codes checked in one place, GIL released while
the C code runs. Everything about shapes and formats is decided in Python (rnnfast/engine.py); this file
only checks what it must to keep the C side memory-safe."""
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset

import numpy as np

from rnnfast.errors import EngineError, InstructionSetError, MemoryLimitError
from rnnfast.limits import check_bytes, memory_limit_from_env

cimport numpy as cnp
from cpython.pythread cimport (NOWAIT_LOCK, WAIT_LOCK, PyThread_acquire_lock, PyThread_allocate_lock,
                              PyThread_free_lock, PyThread_release_lock, PyThread_type_lock)
from rnnfast._core cimport *

cnp.import_array()

cdef extern from *:
    """
    /* The run state cached on a model is taken by one caller at a time; a concurrent caller makes its own. */
    static int rnnf_py_try_lock(int *flag) { return __atomic_exchange_n(flag, 1, __ATOMIC_ACQUIRE) == 0; }
    static void rnnf_py_unlock(int *flag) { __atomic_store_n(flag, 0, __ATOMIC_RELEASE); }
    """
    bint rnnf_py_try_lock(int *flag) nogil
    void rnnf_py_unlock(int *flag) nogil

ctypedef struct LayerDims:
    int cell
    int n_dirs
    int input_size
    int hidden_size
    int out_size

cdef enum:
    LOCAL_LAYERS = 8  # up to this many layers, run() keeps its per-layer state pointers on the C stack
CELL_NAMES = ("rnn", "gru", "lstm")

Y_SEQ_DIR_BATCH = 0
Y_SEQ_BATCH_DIR = 1


cdef int check(rnnf_status status, str what) except -1:
    """A C status as the exception README's "Errors" documents for it."""
    if status == RNNF_OK:
        return 0
    msg = f"{what}: {rnnf_status_str(status).decode()}"
    if status == RNNF_ERR_NOMEM:
        raise MemoryLimitError(msg)
    if status == RNNF_ERR_ISA:
        raise InstructionSetError(msg)
    if status in (RNNF_ERR_ARG, RNNF_ERR_SHAPE, RNNF_ERR_UNSUPPORTED):
        raise ValueError(msg)
    raise EngineError(msg)


def out_of_memory(str what):
    """The error for an allocation of the binding's own that failed."""
    return MemoryLimitError(f"{what}: out of memory")


def isa_compiled():
    return rnnf_isa_compiled().decode().split(",")


def isa_supported():
    return rnnf_isa_supported().decode().split(",")


def isa_selected():
    return rnnf_isa_selected().decode()


def isa_select(str name):
    check(rnnf_isa_select(name.encode()), f"RNNFAST_ISA={name!r} (compiled: {rnnf_isa_compiled().decode()}, "
                                             f"supported here: {rnnf_isa_supported().decode()})")


def activation_names():
    """The C library's activation kinds by code (rnnf_activation_name), until its first unnamed code."""
    out = []
    while rnnf_activation_name(len(out)) != NULL:
        out.append(rnnf_activation_name(len(out)).decode())
    return out


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


def threads_backed_off():
    return rnnf_threads_backed_off()


cdef inline bint is_f32_c(object a):
    """A float32 ndarray C can read in place: C-contiguous, aligned, native byte order."""
    return (cnp.PyArray_CheckExact(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_FLOAT32
            and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>a))


cdef object as_f32(str name, object a):
    """Any other array of numbers as float32 C-contiguous; anything else is a ValueError naming `name`."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{name} has dtype {a.dtype}, expected a float array")
    return np.ascontiguousarray(a, dtype=np.float32)


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


cdef check_lengths(dict desc, dict arrays, object stored):
    """Every buffer C will read holds exactly what the layer's dims say (the C side only has pointers): a short
    array would be read past its end. ValueError naming the array otherwise."""
    from rnnfast.engine import CELL_CODES, WEIGHT_DTYPE_CODES  # engine imports this module: resolved at call time
    from rnnfast.layers import N_GATES

    gates = {code: N_GATES[cell] for cell, code in CELL_CODES.items()}.get(desc["cell"])
    if gates is None:
        raise ValueError(f"cell {desc['cell']!r} is not RNN, GRU or LSTM")
    dirs, hidden, inp = int(desc["n_dirs"]), int(desc["hidden_size"]), int(desc["input_size"])
    proj = int(desc["proj_size"] or 0)
    rows = dirs * gates * hidden
    want = {"w_ih": rows * inp, "w_hh": rows * (proj or hidden), "b_ih": rows, "b_hh": rows,
            "peepholes": dirs * 3 * hidden, "w_hr": dirs * proj * hidden}
    optional = ("b_ih", "b_hh", "peepholes") + (() if proj else ("w_hr",))
    quantized = stored is not None
    for name, count in want.items():
        if quantized and name in ("w_ih", "w_hh", "w_hr"):
            if name not in stored:
                if name == "w_hr" and not proj:
                    continue
                raise ValueError(f"quantized weights {name} are missing")
            q, scales = stored[name]
            itemsize = 2 if desc.get("weight_dtype") == WEIGHT_DTYPE_CODES["float16"] else 1
            if q.nbytes != count * itemsize:
                raise ValueError(f"quantized {name} holds {q.nbytes} bytes, the layer's dims need {count * itemsize}")
            n_rows = {"w_ih": rows, "w_hh": rows, "w_hr": dirs * proj}[name]
            if itemsize == 1 and (scales is None or scales.size != n_rows):
                raise ValueError(f"int8 {name} needs {n_rows} scales, got "
                                 f"{'none' if scales is None else scales.size}")
            continue
        arr = arrays[name]
        if arr is None or arr.size == 0:
            if name in optional or count == 0:
                continue
            raise ValueError(f"{name} is missing; the layer's dims need {count} values")
        if arr.size != count:
            raise ValueError(f"{name} holds {arr.size} values, the layer's dims (n_dirs {dirs}, hidden {hidden}, "
                             f"input {inp}, proj {proj}) need {count}")


cdef int fill_layer_desc(rnnf_layer_desc *c, dict desc, list keep) except -1:
    """One canonical layer (engine.layer_desc) as the C struct; the arrays it points into are appended to keep."""
    cdef int d, a
    arrays = {k: (None if desc[k] is None else np.ascontiguousarray(desc[k], dtype=np.float32))
              for k in ("w_ih", "w_hh", "b_ih", "b_hh", "peepholes", "w_hr")}
    keep.append(arrays)
    c.cell = desc["cell"]
    c.n_dirs = desc["n_dirs"]
    c.reverse = desc["reverse"]
    c.input_size = desc["input_size"]
    c.hidden_size = desc["hidden_size"]
    c.proj_size = desc["proj_size"]
    c.w_ih = fptr(arrays["w_ih"])
    c.w_hh = fptr(arrays["w_hh"])
    c.b_ih = fptr(arrays["b_ih"])
    c.b_hh = fptr(arrays["b_hh"])
    c.peepholes = fptr(arrays["peepholes"])
    c.w_hr = fptr(arrays["w_hr"])
    for d, acts in enumerate(desc["activations"]):
        for a, (kind, alpha, beta) in enumerate(acts):
            c.act[d][a].kind = kind
            c.act[d][a].alpha = alpha
            c.act[d][a].beta = beta
    c.clip = desc["clip"]
    c.input_forget = desc["input_forget"]
    c.linear_before_reset = desc["linear_before_reset"]
    c.weight_dtype = desc.get("weight_dtype", 0)
    q = desc.get("qweights")
    stored = None
    if c.weight_dtype != 0:
        stored = {k: (np.ascontiguousarray(v[0]), None if v[1] is None else
                      np.ascontiguousarray(v[1], dtype=np.float32)) for k, v in q.items()}
        keep.append(stored)
    check_lengths(desc, arrays, stored)
    if stored is not None:
        c.w_ih = c.w_hh = c.w_hr = NULL
        c.q_ih = bptr(stored["w_ih"][0])
        c.q_hh = bptr(stored["w_hh"][0])
        c.s_ih = fptr(stored["w_ih"][1])
        c.s_hh = fptr(stored["w_hh"][1])
        if "w_hr" in stored:
            c.q_hr = bptr(stored["w_hr"][0])
            c.s_hr = fptr(stored["w_hr"][1])
    return 0


cdef class CModel:
    """Packed weights of one or more stacked recurrent layers (rnnf_model). Immutable once built."""
    cdef rnnf_model *ptr
    cdef readonly list layers     # per layer: dict(cell, n_dirs, input_size, hidden_size, out_size)
    cdef rnnf_state *cached
    cdef int cached_batch
    cdef int busy
    cdef int n_layers
    cdef LayerDims *dims

    def __cinit__(self, list descs):
        cdef int n = len(descs)
        cdef rnnf_layer_desc *c_descs
        cdef int i
        self.ptr = NULL
        self.cached = NULL
        self.dims = NULL
        if n == 0:
            raise ValueError("a model needs at least one recurrent layer")
        c_descs = <rnnf_layer_desc *>calloc(n, sizeof(rnnf_layer_desc))
        if c_descs == NULL:
            raise out_of_memory("building the C model")
        keep = []
        try:
            self.layers = []
            for i, desc in enumerate(descs):
                fill_layer_desc(&c_descs[i], desc, keep)
                self.layers.append({k: desc[k] for k in ("cell", "n_dirs", "input_size", "hidden_size")}
                                   | {"out_size": desc["proj_size"] or desc["hidden_size"]})
            check(rnnf_model_create(c_descs, n, &self.ptr), "building the C model")
        finally:
            free(c_descs)
        self.dims = <LayerDims *>calloc(n, sizeof(LayerDims))
        if self.dims == NULL:
            raise out_of_memory("building the C model")
        for i, lay in enumerate(self.layers):
            self.dims[i] = LayerDims(lay["cell"], lay["n_dirs"], lay["input_size"], lay["hidden_size"],
                                     lay["out_size"])
        self.n_layers = n

    def __dealloc__(self):
        free(self.dims)
        if self.cached != NULL:
            rnnf_state_free(self.cached)
        if self.ptr != NULL:
            rnnf_model_free(self.ptr)

    cdef rnnf_state *borrow_state(self, int batch, bint *owned) except NULL:
        """The cached state when it is free (the usual case), else a fresh one for a concurrent caller."""
        cdef rnnf_state *st = NULL
        if rnnf_py_try_lock(&self.busy):
            owned[0] = False
            if self.cached != NULL and self.cached_batch != batch:
                rnnf_state_free(self.cached)
                self.cached = NULL
            if self.cached == NULL:
                status = rnnf_state_create(self.ptr, batch, &self.cached)
                if status != RNNF_OK:
                    rnnf_py_unlock(&self.busy)
                    check(status, "creating the run state")
                self.cached_batch = batch
            return self.cached
        owned[0] = True
        check(rnnf_state_create(self.ptr, batch, &st), "creating the run state")
        return st

    def run(self, x, sequence_lens=None, initial_h=None, initial_c=None, mask=None, mask_zero_output=False,
            bint want_y=True, int y_layout=0, n_threads=None):
        """CompiledStack.run's contract (rnnfast/engine.py). Checks and conversions are made here in one pass, so
        a float32 C-contiguous x and states reach C without a copy or an intermediate Python object."""
        return self.run_c(x, sequence_lens, initial_h, initial_c, mask, bool(mask_zero_output), want_y, y_layout,
                          int(n_threads) if n_threads else 0)

    cdef tuple run_c(self, object x, object sequence_lens, object initial_h, object initial_c, object mask,
                     bint mask_zero_output, bint want_y, int y_layout, int n_threads):
        cdef int L = self.n_layers, T, B, i
        cdef const LayerDims *last = &self.dims[L - 1]
        cdef rnnf_run_args args
        cdef cnp.npy_intp shape[4]
        cdef const float *local_ptrs[4 * LOCAL_LAYERS]
        cdef const float **ptrs = local_ptrs
        cdef rnnf_state *st
        cdef bint owned = False
        cdef rnnf_status status
        cdef const int32_t *lens
        keep = []  # arrays converted here must outlive the C call
        if not is_f32_c(x):
            x = as_f32("x", x)
            keep.append(x)
        if cnp.PyArray_NDIM(x) != 3 or cnp.PyArray_DIM(x, 2) != self.dims[0].input_size:
            raise ValueError(f"x has shape {x.shape}, expected [seq_len, batch, {self.dims[0].input_size}]")
        T = <int>cnp.PyArray_DIM(x, 0)
        B = <int>cnp.PyArray_DIM(x, 1)
        if T == 0 or B == 0:
            raise ValueError(f"x has shape {x.shape}: seq_len and batch must be at least 1")
        memset(&args, 0, sizeof(args))
        args.seq_len = T
        args.batch = B
        args.x = <const float *>cnp.PyArray_DATA(x)
        args.mask_zero_output = mask_zero_output
        args.y_layout = y_layout
        args.n_threads = n_threads
        if sequence_lens is not None:
            if not (cnp.PyArray_CheckExact(sequence_lens) and cnp.PyArray_TYPE(sequence_lens) == cnp.NPY_INT32
                    and cnp.PyArray_ISCARRAY_RO(sequence_lens) and cnp.PyArray_NDIM(sequence_lens) == 1
                    and cnp.PyArray_DIM(sequence_lens, 0) == B):
                sequence_lens = np.asarray(sequence_lens)
                if sequence_lens.dtype.kind not in "iu" or sequence_lens.shape != (B,):
                    raise ValueError(f"sequence_lens must be integers of shape ({B},), got {sequence_lens.dtype} "
                                     f"{sequence_lens.shape}")
                if sequence_lens.min() < 0 or sequence_lens.max() > T:
                    raise ValueError(f"sequence_lens values must lie in [0, {T}] (seq_len), got "
                                     f"{sequence_lens.tolist()}")
                sequence_lens = np.ascontiguousarray(sequence_lens, dtype=np.int32)
                keep.append(sequence_lens)
            lens = <const int32_t *>cnp.PyArray_DATA(sequence_lens)
            for i in range(B):
                if lens[i] < 0 or lens[i] > T:
                    raise ValueError(f"sequence_lens values must lie in [0, {T}] (seq_len), got "
                                     f"{sequence_lens.tolist()}")
            args.sequence_lens = lens
        if mask is not None:
            if not (cnp.PyArray_CheckExact(mask) and cnp.PyArray_ISCARRAY_RO(mask)
                    and (cnp.PyArray_TYPE(mask) == cnp.NPY_BOOL or cnp.PyArray_TYPE(mask) == cnp.NPY_UINT8)
                    and cnp.PyArray_NDIM(mask) == 2 and cnp.PyArray_DIM(mask, 0) == T
                    and cnp.PyArray_DIM(mask, 1) == B):
                mask = np.asarray(mask)
                if mask.shape != (T, B):
                    raise ValueError(f"mask has shape {mask.shape}, expected (seq_len, batch) = {(T, B)}")
                mask = np.ascontiguousarray(mask != 0, dtype=np.uint8)  # C reads any nonzero byte as true
                keep.append(mask)
            args.mask = <const uint8_t *>cnp.PyArray_DATA(mask)
        if L > LOCAL_LAYERS:
            ptrs = <const float **>calloc(4 * L, sizeof(float *))
            if ptrs == NULL:
                raise out_of_memory("running the model")
        else:
            memset(local_ptrs, 0, sizeof(local_ptrs))
        try:
            self.state_ptrs("initial_h", initial_h, B, False, ptrs, keep)
            self.state_ptrs("initial_c", initial_c, B, True, ptrs + L, keep)
            y = None
            if want_y:
                shape[0] = T
                if y_layout == Y_SEQ_DIR_BATCH:
                    shape[1], shape[2], shape[3] = last.n_dirs, B, last.out_size
                    y = cnp.PyArray_EMPTY(4, shape, cnp.NPY_FLOAT32, 0)
                else:
                    shape[1], shape[2] = B, last.n_dirs * last.out_size
                    y = cnp.PyArray_EMPTY(3, shape, cnp.NPY_FLOAT32, 0)
                args.y = <float *>cnp.PyArray_DATA(y)
            y_h = [None] * L
            y_c = [None] * L
            shape[1] = B
            for i in range(L):
                shape[0], shape[2] = self.dims[i].n_dirs, self.dims[i].out_size
                out = cnp.PyArray_EMPTY(3, shape, cnp.NPY_FLOAT32, 0)
                y_h[i] = out
                ptrs[2 * L + i] = <const float *>cnp.PyArray_DATA(out)
                if self.dims[i].cell == 2:
                    shape[2] = self.dims[i].hidden_size
                    out = cnp.PyArray_EMPTY(3, shape, cnp.NPY_FLOAT32, 0)
                    y_c[i] = out
                    ptrs[3 * L + i] = <const float *>cnp.PyArray_DATA(out)
            args.initial_h = ptrs
            args.initial_c = ptrs + L
            args.y_h = <float **>(ptrs + 2 * L)
            args.y_c = <float **>(ptrs + 3 * L)
            st = self.borrow_state(B, &owned)
            with nogil:
                status = rnnf_run(self.ptr, st, &args)
            if owned:
                rnnf_state_free(st)
            else:
                rnnf_py_unlock(&self.busy)
            check(status, "running the model")
        finally:
            if ptrs != local_ptrs:
                free(ptrs)
        return y, y_h, y_c

    cdef int state_ptrs(self, str name, object states, int B, bint cell_state, const float **out,
                        list keep) except -1:
        """Fill out[layer] from a per-layer list of states (None entries stay NULL: zeros), checking each."""
        cdef int i, size
        if states is None:
            return 0
        if len(states) != self.n_layers:
            raise ValueError(f"{name} needs one entry per layer ({self.n_layers}), got {len(states)}")
        for i in range(self.n_layers):
            s = states[i]
            if s is None:
                continue
            if cell_state and self.dims[i].cell != 2:
                raise ValueError(f"{name} given for layer {i}, a {CELL_NAMES[self.dims[i].cell]}, which has no "
                                 f"cell state")
            size = self.dims[i].hidden_size if cell_state else self.dims[i].out_size
            if not is_f32_c(s):
                s = as_f32(f"{name}[{i}]", s)
                keep.append(s)
            if (cnp.PyArray_NDIM(s) != 3 or cnp.PyArray_DIM(s, 0) != self.dims[i].n_dirs
                    or cnp.PyArray_DIM(s, 1) != B or cnp.PyArray_DIM(s, 2) != size):
                raise ValueError(f"{name}[{i}] has shape {s.shape}, expected {(self.dims[i].n_dirs, B, size)}")
            out[i] = <const float *>cnp.PyArray_DATA(s)
        return 0


cdef class CStream:
    """A state that persists between calls, for step-by-step inference (rnnf_step). A step runs without the GIL, so
    steps, resets and state reads/writes take `lock`: threads sharing a stream see whole steps, never a mix."""
    cdef CModel model
    cdef rnnf_state *st
    cdef PyThread_type_lock lock
    cdef readonly int batch
    cdef readonly int input_size
    cdef readonly int output_size

    def __cinit__(self, CModel model, int batch):
        self.st = NULL
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise out_of_memory("making a stream")
        self.model = model
        self.batch = batch
        self.input_size = model.layers[0]["input_size"]
        last = model.layers[len(model.layers) - 1]
        self.output_size = last["out_size"] * last["n_dirs"]
        check(rnnf_state_create(model.ptr, batch, &self.st), "creating the stream state")

    def thread_choice(self):
        """{"threads": the count steps use now, "seconds_1_thread" / "seconds_asked": recent median seconds per step
        of each, None until measured}: rnnf_step times its steps with one thread and the asked count (adapt.c)."""
        cdef int n = 1
        cdef double one = 0, asked = 0
        self.acquire()
        try:
            check(rnnf_state_threads(self.st, &n, &one, &asked), "reading the stream's thread choice")
        finally:
            PyThread_release_lock(self.lock)
        return {"threads": n, "seconds_1_thread": one or None, "seconds_asked": asked or None}

    def __dealloc__(self):
        if self.st != NULL:
            rnnf_state_free(self.st)
        if self.lock != NULL:
            PyThread_free_lock(self.lock)

    cdef void acquire(self):
        """Uncontended: one atomic operation; contended: waits without holding the GIL."""
        if not PyThread_acquire_lock(self.lock, NOWAIT_LOCK):
            with nogil:
                PyThread_acquire_lock(self.lock, WAIT_LOCK)

    def step(self, x, out, int n_threads=0):
        """x float32 [batch, input_size], out float32 [batch, output_size], both C-contiguous."""
        cdef const float[:, ::1] xv = x
        cdef float[:, ::1] yv = out
        cdef rnnf_status status
        if xv.shape[0] != self.batch or xv.shape[1] != self.input_size:
            raise ValueError(f"x has shape {tuple(x.shape)}, expected {(self.batch, self.input_size)}")
        if yv.shape[0] != self.batch or yv.shape[1] != self.output_size:
            raise ValueError(f"out has shape {tuple(out.shape)}, expected {(self.batch, self.output_size)}")
        self.acquire()
        with nogil:
            status = rnnf_step(self.model.ptr, self.st, &xv[0, 0], &yv[0, 0], n_threads)
            PyThread_release_lock(self.lock)
        check(status, "stepping the stream")

    def step_new(self, x, int n_threads=0):
        """One step into a new output array when x is a float32 C-contiguous ndarray [batch, input_size], or
        [input_size] with batch 1 (the output then has no batch axis either); None, with the state untouched, for
        any other x, which the caller converts or refuses with its own message (Stream.step)."""
        cdef cnp.npy_intp shape[2]
        cdef int nd
        cdef rnnf_status status
        cdef const float *xp
        cdef float *yp
        if not is_f32_c(x):
            return None
        nd = cnp.PyArray_NDIM(x)
        if nd == 2 and cnp.PyArray_DIM(x, 0) == self.batch and cnp.PyArray_DIM(x, 1) == self.input_size:
            shape[0], shape[1] = self.batch, self.output_size
        elif nd == 1 and self.batch == 1 and cnp.PyArray_DIM(x, 0) == self.input_size:
            shape[0] = self.output_size
        else:
            return None
        y = cnp.PyArray_EMPTY(nd, shape, cnp.NPY_FLOAT32, 0)
        xp = <const float *>cnp.PyArray_DATA(x)
        yp = <float *>cnp.PyArray_DATA(y)
        self.acquire()
        with nogil:
            status = rnnf_step(self.model.ptr, self.st, xp, yp, n_threads)
            PyThread_release_lock(self.lock)
        check(status, "stepping the stream")
        return y

    def reset(self, rows=None):
        cdef const int32_t[::1] rv
        cdef rnnf_status status
        if rows is None:
            self.acquire()
            status = rnnf_state_reset(self.st, NULL, 0)
            PyThread_release_lock(self.lock)
            check(status, "resetting the stream")
            return
        rv = np.ascontiguousarray(rows, dtype=np.int32)
        if rv.shape[0] == 0:
            return
        self.acquire()
        status = rnnf_state_reset(self.st, &rv[0], rv.shape[0])
        PyThread_release_lock(self.lock)
        check(status, f"resetting rows {list(rows)} of a batch of {self.batch}")

    def _state_layout(self, keys):
        """(layer and which-state codes as int32, their shapes, where each starts in one flat float32 buffer) of
        keys [(layer, which_c)], checked before the lock is taken (nothing may fail while it is held)."""
        from rnnfast.engine import CELL_CODES  # engine imports this module: resolved at call time

        shapes, offsets, end = [], [0], 0  # no negative indices: this module is compiled without wraparound
        for layer, which_c in keys:
            lay = self.model.layers[layer]
            if which_c and lay["cell"] != CELL_CODES["lstm"]:
                raise ValueError(f"layer {layer} is not an LSTM: it has no cell state")
            shape = (lay["n_dirs"], self.batch, lay["hidden_size"] if which_c else lay["out_size"])
            end += shape[0] * shape[1] * shape[2]
            shapes.append(shape)
            offsets.append(end)
        codes = np.asarray([(int(layer), 1 if which_c else 0) for layer, which_c in keys], np.int32).reshape(-1, 2)
        return codes, shapes, np.asarray(offsets, np.int64)

    def get_all(self, keys):
        """keys [(layer, which_c)] -> their states [n_dirs, batch, size], read under one hold of the lock: all from
        the same step (read one by one, they could straddle a step another thread runs between them)."""
        codes, shapes, offsets = self._state_layout(keys)
        flat = np.empty(max(int(offsets[len(offsets) - 1]), 1), np.float32)
        cdef float[::1] v = flat
        cdef const int32_t[:, ::1] cv = codes
        cdef const int64_t[::1] ov = offsets
        cdef Py_ssize_t i, n = cv.shape[0]
        cdef rnnf_status status = RNNF_OK
        self.acquire()
        for i in range(n):
            status = rnnf_state_get(self.st, cv[i, 0], cv[i, 1], &v[ov[i]])
            if status != RNNF_OK:
                break
        PyThread_release_lock(self.lock)
        check(status, "reading the stream state")
        return [flat[offsets[k]:offsets[k + 1]].reshape(shape).copy() for k, shape in enumerate(shapes)]

    def set_all(self, items):
        """items [(layer, which_c, value)]: every value checked against its state's shape first, then all written
        under one hold of the lock, so a step sees all of them or none."""
        codes, shapes, offsets = self._state_layout([(layer, which_c) for layer, which_c, _ in items])
        parts = []
        for (layer, which_c, value), shape in zip(items, shapes):
            arr = np.ascontiguousarray(value, dtype=np.float32)
            if arr.shape != shape:
                raise ValueError(f"state {'c' if which_c else 'h'} of layer {layer} must have shape {shape}, got "
                                 f"{arr.shape}")
            parts.append(arr.reshape(-1))
        flat = np.ascontiguousarray(np.concatenate(parts) if parts else np.zeros(1, np.float32))
        cdef const float[::1] v = flat
        cdef const int32_t[:, ::1] cv = codes
        cdef const int64_t[::1] ov = offsets
        cdef Py_ssize_t i, n = cv.shape[0]
        cdef rnnf_status status = RNNF_OK
        self.acquire()
        for i in range(n):
            status = rnnf_state_set(self.st, cv[i, 0], cv[i, 1], &v[ov[i]])
            if status != RNNF_OK:
                break
        PyThread_release_lock(self.lock)
        check(status, "setting the stream state")


include "_graph.pxi"
