# Binding of the graph executor (include/rnnfast/rnnf.h, rnnf_graph_*): a description made by
# rnnfast/graph/compile.py becomes the C structs once; run checks dtypes and contiguity, makes the outputs with the
# numpy C API and runs the whole graph in one C call with the GIL released. Included by _core.pyx.
from libc.stdlib cimport malloc
from libc.string cimport memcpy

GRAPH_DTYPES = {0: np.float32, 1: np.int64, 2: np.int32, 3: np.bool_, 4: np.int8}
cdef int NPY_OF_DTYPE[5]
NPY_OF_DTYPE[:] = [cnp.NPY_FLOAT32, cnp.NPY_INT64, cnp.NPY_INT32, cnp.NPY_BOOL, cnp.NPY_INT8]

cdef enum:
    LOCAL_TENSORS = 16  # up to this many graph inputs/outputs, run() keeps its tensors on the C stack


class GraphError(ValueError):
    """The graph executor refused a description or a call; the message names the node, tensor or input."""


cdef void *take(list pool, size_t n) except NULL:
    """malloc'd memory freed with the pool (after rnnf_graph_create has copied everything)."""
    cdef void *p = malloc(n if n else 1)
    if p == NULL:
        raise out_of_memory("building the C graph")
    pool.append(<size_t>p)
    return p


def aligned_array(data, dtype):
    """A C-contiguous copy of data starting on a 64-byte boundary (as export-c's static arrays are)."""
    data = np.asarray(data, dtype=dtype)
    buf = np.empty(data.nbytes + 64, np.uint8)
    off = (-buf.ctypes.data) % 64
    out = buf[off:off + data.nbytes].view(dtype).reshape(data.shape)
    out[...] = data
    return out


cdef int fill_graph_desc(rnnf_graph_desc *g, dict desc, list pool, list keep, bint aligned=False) except -1:
    cdef int i, k
    cdef rnnf_tensor_desc *tensors
    cdef rnnf_node_desc *nodes
    cdef int32_t *ids
    cdef int64_t *iattr
    cdef float *fattr
    cdef rnnf_layer_desc *layers
    cdef rnnf_graph_desc *subs
    memset(g, 0, sizeof(rnnf_graph_desc))
    tlist = desc["tensors"]
    g.n_tensors = len(tlist)
    tensors = <rnnf_tensor_desc *>take(pool, sizeof(rnnf_tensor_desc) * len(tlist))
    stored = desc.get("quantized") or {} if aligned else {}  # export-c's form: the stored values themselves
    for i, (dtype, rank, dims_at, data, alias_of, name) in enumerate(tlist):
        tensors[i].stored = 0
        tensors[i].scales = NULL
        tensors[i].dtype = dtype
        tensors[i].rank = rank
        tensors[i].dims_at = dims_at
        tensors[i].alias_of = alias_of
        bname = name.encode()
        keep.append(bname)
        tensors[i].name = bname
        if data is None:
            tensors[i].data = NULL
        elif i in stored:
            values, scale = stored[i]
            arr = aligned_array(values if values.dtype == np.int8 else values.view(np.uint16), values.dtype
                                if values.dtype == np.int8 else np.uint16)
            keep.append(arr)
            tensors[i].data = cnp.PyArray_DATA(<cnp.ndarray>arr)
            tensors[i].stored = 2 if values.dtype == np.int8 else 1  # rnnf_weight_dtype
            if scale is not None:
                arr = np.ascontiguousarray(scale, dtype=np.float32)
                keep.append(arr)
                tensors[i].scales = <const float *>cnp.PyArray_DATA(<cnp.ndarray>arr)
        else:
            if aligned:
                arr = aligned_array(data, GRAPH_DTYPES[dtype])
            else:
                arr = np.ascontiguousarray(data, dtype=GRAPH_DTYPES[dtype])
            keep.append(arr)
            tensors[i].data = cnp.PyArray_DATA(<cnp.ndarray>arr)
    g.tensors = tensors
    nlist = desc["nodes"]
    g.n_nodes = len(nlist)
    nodes = <rnnf_node_desc *>take(pool, sizeof(rnnf_node_desc) * len(nlist))
    for i, (op, name, ins, outs, ia, fa, lay) in enumerate(nlist):
        memset(&nodes[i], 0, sizeof(rnnf_node_desc))
        nodes[i].op = op
        bname = name.encode()
        keep.append(bname)
        nodes[i].name = bname
        nodes[i].n_in = len(ins)
        nodes[i].n_out = len(outs)
        ids = <int32_t *>take(pool, 4 * len(ins))
        for k in range(len(ins)):
            ids[k] = ins[k]
        nodes[i].in_ = ids
        ids = <int32_t *>take(pool, 4 * len(outs))
        for k in range(len(outs)):
            ids[k] = outs[k]
        nodes[i].out = ids
        nodes[i].n_iattr = len(ia)
        iattr = <int64_t *>take(pool, 8 * len(ia))
        for k in range(len(ia)):
            iattr[k] = ia[k]
        nodes[i].iattr = iattr
        nodes[i].n_fattr = len(fa)
        fattr = <float *>take(pool, 4 * len(fa))
        for k in range(len(fa)):
            fattr[k] = fa[k]
        nodes[i].fattr = fattr
        if lay:
            layers = <rnnf_layer_desc *>take(pool, sizeof(rnnf_layer_desc) * len(lay))
            memset(layers, 0, sizeof(rnnf_layer_desc) * len(lay))
            for k in range(len(lay)):
                fill_layer_desc(&layers[k], lay[k], keep)
            nodes[i].layers = layers
            nodes[i].n_layers = len(lay)
    g.nodes = nodes
    g.n_inputs = len(desc["inputs"])
    g.n_outputs = len(desc["outputs"])
    g.inputs = int_array(pool, desc["inputs"])
    g.outputs = int_array(pool, desc["outputs"])
    g.n_syms = len(desc["syms"])
    g.sym_input = int_array(pool, [s[0] for s in desc["syms"]])
    g.sym_axis = int_array(pool, [s[1] for s in desc["syms"]])
    g.n_dims = len(desc["dim_start"]) - 1
    g.dim_start = int_array(pool, desc["dim_start"])
    prog = desc["prog"]
    iattr = <int64_t *>take(pool, 8 * len(prog))
    for k in range(len(prog)):
        iattr[k] = prog[k]
    g.prog = iattr
    g.n_checks = len(desc["checks"])
    g.check_a = int_array(pool, [c[0] for c in desc["checks"]])
    g.check_b = int_array(pool, [c[1] for c in desc["checks"]])
    g.check_node = int_array(pool, [c[2] for c in desc["checks"]])
    g.check_kind = int_array(pool, [c[3] if len(c) > 3 else 0 for c in desc["checks"]])
    names = <const char **>take(pool, sizeof(char *) * max(len(desc["checks"]), 1))
    for k, c in enumerate(desc["checks"]):
        names[k] = NULL
        if len(c) > 4 and c[4]:
            bname = c[4].encode()
            keep.append(bname)
            names[k] = bname
    g.check_name = names
    g.n_subgraphs = len(desc["subgraphs"])
    subs = <rnnf_graph_desc *>take(pool, sizeof(rnnf_graph_desc) * len(desc["subgraphs"]))
    for k, sub in enumerate(desc["subgraphs"]):
        fill_graph_desc(&subs[k], sub, pool, keep, aligned)
    g.subgraphs = subs
    defaults = desc.get("input_defaults")
    g.input_default = int_array(pool, defaults) if defaults else NULL
    return 0


cdef const int32_t *int_array(list pool, values) except NULL:
    cdef int32_t *a = <int32_t *>take(pool, 4 * len(values))
    cdef int k
    for k in range(len(values)):
        a[k] = values[k]
    return a


cdef int graph_check(rnnf_status status, rnnf_error *err, str where) except -1:
    if status == RNNF_OK:
        return 0
    msg = f"{where}: {err.message.decode(errors='replace') or rnnf_status_str(status).decode()}"
    if status == RNNF_ERR_NOMEM:
        raise MemoryLimitError(msg)
    if status in (RNNF_ERR_ARG, RNNF_ERR_SHAPE):
        raise ValueError(msg)
    raise GraphError(msg)


cdef bint buffer_fits(object y, int npy_type, int rank, cnp.npy_intp *shape):
    cdef int a
    if not (cnp.PyArray_CheckExact(y) and cnp.PyArray_TYPE(<cnp.ndarray>y) == npy_type
            and cnp.PyArray_ISCARRAY(<cnp.ndarray>y) and cnp.PyArray_NDIM(<cnp.ndarray>y) == rank):
        return False
    for a in range(rank):
        if cnp.PyArray_DIM(<cnp.ndarray>y, a) != shape[a]:
            return False
    return True


def graph_pool_bytes(dict desc, list input_shapes, str where):
    """Bytes of the one block (pool.h) that loading the description, a state and a plan for these input shapes
    take when every constant is 64-byte aligned (export-c's state struct holds a block of this size): measured by
    doing it, in a block that grows until it fits (only the block running short is retried: another out-of-memory,
    such as a size over the memory limit, is the error it is), never past the memory limit."""
    cdef rnnf_graph_desc g
    cdef rnnf_error err
    cdef rnnf_pool mem
    cdef rnnf_graph *graph = NULL
    cdef rnnf_graph_state *state = NULL
    cdef rnnf_tensor tin[LOCAL_TENSORS]
    cdef rnnf_tensor tout[LOCAL_TENSORS]
    cdef int i, a
    cdef rnnf_status status
    if len(desc["inputs"]) > LOCAL_TENSORS or len(desc["outputs"]) > LOCAL_TENSORS:
        raise GraphError(f"{where}: more than {LOCAL_TENSORS} graph inputs or outputs")
    for i, shape in enumerate(input_shapes):
        memset(&tin[i], 0, sizeof(rnnf_tensor))
        tin[i].dtype = desc["tensors"][desc["inputs"][i]][0]
        tin[i].rank = len(shape)
        for a in range(len(shape)):
            tin[i].dims[a] = shape[a]
    pool, keep = [], []
    size = 1 << 20
    try:
        fill_graph_desc(&g, desc, pool, keep, True)
        while True:
            check_bytes(size, where, "the exported model's memory block")
            block = np.zeros(size + 64, np.uint8)
            mem.base = <unsigned char *><size_t>(block.ctypes.data + (-block.ctypes.data) % 64)
            mem.size = size
            mem.used = 0
            mem.short_by = 0
            err.message[0] = 0
            status = rnnf_graph_create_in(&g, &mem, &graph, &err)
            if status == RNNF_OK:
                status = rnnf_graph_state_create_in(graph, &mem, &state)
            if status == RNNF_OK:
                status = rnnf_graph_prepare(state, tin, tout, &err)
            if status != RNNF_ERR_NOMEM or not mem.short_by:
                graph_check(status, &err, where)
                return mem.used
            size = max(2 * size, mem.used + mem.short_by)
    finally:
        for p in pool:
            free(<void *><size_t>p)


cdef class CGraph:
    """A whole graph loaded into C (rnnf_graph) with a cached run state; run() is one C call."""
    cdef rnnf_graph *ptr
    cdef rnnf_graph_state *cached
    cdef int busy
    cdef readonly int n_inputs, n_outputs
    cdef readonly str where
    cdef int in_types[LOCAL_TENSORS]
    cdef size_t memory_limit
    cdef list in_names
    cdef list hosts  # per host node: a callable (input arrays) -> output arrays, for operators outside the C set
    # accept_feeds' rules, per input: its name (None: run_feeds never takes it), whether it may be left out, the
    # rank it must have (-1: any) and its fixed sizes (axis, size), in C for a check that costs next to nothing
    cdef list feed_names
    cdef bint feed_optional[LOCAL_TENSORS]
    cdef int feed_rank[LOCAL_TENSORS]
    cdef int feed_n_fixed[LOCAL_TENSORS]
    cdef int feed_axis[LOCAL_TENSORS][8]
    cdef cnp.npy_intp feed_size[LOCAL_TENSORS][8]
    cdef int feed_threads

    def __cinit__(self, dict desc, str where):
        cdef rnnf_graph_desc g
        cdef rnnf_error err
        cdef int i
        self.ptr = NULL
        self.cached = NULL
        self.where = where
        self.hosts = list(desc.get("hosts", ()))
        self.in_names = [desc["tensors"][t][5] for t in desc["inputs"]]
        self.memory_limit = memory_limit_from_env()
        self.n_inputs = len(desc["inputs"])
        self.n_outputs = len(desc["outputs"])
        if self.n_inputs > LOCAL_TENSORS or self.n_outputs > LOCAL_TENSORS:
            raise GraphError(f"{where}: more than {LOCAL_TENSORS} graph inputs or outputs")
        for i in range(self.n_inputs):
            self.in_types[i] = NPY_OF_DTYPE[desc["tensors"][desc["inputs"][i]][0]]
        pool, keep = [], []
        err.message[0] = 0
        try:
            fill_graph_desc(&g, desc, pool, keep)
            status = rnnf_graph_create(&g, &self.ptr, &err)
        finally:
            for p in pool:
                free(<void *><size_t>p)
        graph_check(status, &err, where)

    def __dealloc__(self):
        if self.cached != NULL:
            rnnf_graph_state_free(self.cached)
        if self.ptr != NULL:
            rnnf_graph_free(self.ptr)

    def accept_feeds(self, list rules, int n_threads=0):
        """The feeds run_feeds takes as they are: per graph input in order, None (never: a feed of this input goes
        the caller's way) or (name, optional, rank or -1 for any, ((axis, size), ...) the sizes it must have); and
        the thread count its runs ask for."""
        cdef int i, k
        if len(rules) != self.n_inputs:
            raise ValueError(f"{self.where}: {len(rules)} feed rules for {self.n_inputs} inputs")
        names = []
        for i, rule in enumerate(rules):
            if rule is None:
                names.append(None)
                continue
            name, optional, rank, fixed = rule
            if len(fixed) > 8:
                raise ValueError(f"{self.where}: input {name!r}: more than 8 fixed sizes")
            names.append(str(name))
            self.feed_optional[i] = bool(optional)
            self.feed_rank[i] = int(rank)
            self.feed_n_fixed[i] = len(fixed)
            for k, (axis, size) in enumerate(fixed):
                self.feed_axis[i][k] = axis
                self.feed_size[i][k] = size
        self.feed_names = names
        self.feed_threads = n_threads

    def run_feeds(self, dict feeds):
        """run() of a feed dict {input name: array} when every key names an input, every required input is there
        and each array passes accept_feeds' rule unchanged: a C-contiguous array of the input's own dtype, native
        byte order, of the rank and fixed sizes given. Otherwise None, having run nothing: the caller's own checks
        then name what is wrong (or convert what needs converting)."""
        cdef int i, k, given = 0
        cdef cnp.ndarray arr
        cdef object x
        if self.feed_names is None:
            return None
        inputs = [None] * self.n_inputs
        for i in range(self.n_inputs):
            name = self.feed_names[i]
            if name is None:
                return None
            x = feeds.get(name)
            if x is None:
                if not self.feed_optional[i]:
                    return None
                if name in feeds:
                    given += 1
                continue
            given += 1
            if not (cnp.PyArray_CheckExact(x) and cnp.PyArray_TYPE(<cnp.ndarray>x) == self.in_types[i]
                    and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>x)):
                return None
            arr = <cnp.ndarray>x
            if self.feed_rank[i] >= 0 and cnp.PyArray_NDIM(arr) != self.feed_rank[i]:
                return None
            for k in range(self.feed_n_fixed[i]):
                if cnp.PyArray_DIM(arr, self.feed_axis[i][k]) != self.feed_size[i][k]:
                    return None
            inputs[i] = x
        if given != len(feeds):
            return None
        return self.run_locked(inputs, self.feed_threads, None)

    def run(self, list inputs, int n_threads=0, list into=None):
        """inputs: arrays of the graph inputs' dtypes, in order (others are converted). Returns the outputs as a list.
        into: None, or per output None or an array of the output's dtype and shape to write it into (a stream's
        state buffers), never one of the inputs."""
        return self.run_locked(inputs, n_threads, into)

    cdef list run_locked(self, list inputs, int n_threads, list into):
        """run() in the graph's cached state, or in a state of its own while another thread runs the graph."""
        cdef rnnf_graph_state *st
        cdef bint owned = False
        if rnnf_py_try_lock(&self.busy):
            if self.cached == NULL:
                try:
                    self.cached = self.new_state()
                except BaseException:
                    rnnf_py_unlock(&self.busy)
                    raise
            st = self.cached
        else:  # another thread is running this graph: plan in a state of our own
            st = self.new_state()
            owned = True
        try:
            return self.run_in(st, inputs, n_threads, into)
        finally:
            if owned:
                rnnf_graph_state_free(st)
            else:
                rnnf_py_unlock(&self.busy)

    cdef rnnf_graph_state *new_state(self) except NULL:
        cdef rnnf_graph_state *st = NULL
        check(rnnf_graph_state_create(self.ptr, &st), self.where)
        rnnf_graph_state_set_memory_limit(st, self.memory_limit)
        return st

    cdef list run_in(self, rnnf_graph_state *st, list inputs, int n_threads, list into):
        """run() in state st, which the caller holds for the call."""
        cdef rnnf_tensor tin[LOCAL_TENSORS]
        cdef rnnf_tensor tout[LOCAL_TENSORS]
        cdef rnnf_error err
        cdef int i, a
        cdef rnnf_status status
        cdef cnp.ndarray arr
        cdef cnp.npy_intp shape[8]
        if len(inputs) != self.n_inputs:
            raise ValueError(f"{self.where}: {len(inputs)} inputs, expected {self.n_inputs}")
        converted = None
        for i in range(self.n_inputs):
            x = inputs[i]
            if x is None:  # left out: the input's default (the executor refuses a required one by name)
                tin[i].dtype = -1
                tin[i].rank = 0
                tin[i].data = NULL
                continue
            if not (cnp.PyArray_CheckExact(x) and cnp.PyArray_TYPE(<cnp.ndarray>x) == self.in_types[i]
                    and cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>x)):
                # another dtype of the same kind, a view, a list: converted here; another kind is refused
                want = np.dtype(cnp.PyArray_DescrFromType(self.in_types[i]))
                x = np.asarray(x)
                if x.dtype.kind != want.kind and not (want.kind in "iu" and x.dtype.kind in "iu"):
                    raise ValueError(f"{self.where}: input {self.in_names[i]!r} has dtype {x.dtype}, expected {want}")
                x = np.asarray(x, dtype=want, order="C")
                if converted is None:
                    converted = []
                converted.append(x)  # alive until the run ends
            arr = <cnp.ndarray>x
            if cnp.PyArray_NDIM(arr) > 8:
                raise ValueError(f"{self.where}: input {i} has more than 8 dimensions")
            tin[i].dtype = self.in_type_code(i)
            tin[i].rank = cnp.PyArray_NDIM(arr)
            for a in range(tin[i].rank):
                tin[i].dims[a] = cnp.PyArray_DIM(arr, a)
            tin[i].data = cnp.PyArray_DATA(arr)
        # with the GIL held: planning the same shapes again takes less than letting the GIL go and taking it back (a
        # tenth of a small model's run), and new shapes are planned once
        status = rnnf_graph_prepare(st, tin, tout, &err)
        graph_check(status, &err, self.where)
        outs = []
        for i in range(self.n_outputs):
            for a in range(tout[i].rank):
                shape[a] = tout[i].dims[a]
            y = None if into is None else into[i]
            if y is None:
                y = cnp.PyArray_EMPTY(tout[i].rank, shape, NPY_OF_DTYPE[tout[i].dtype], 0)
            elif not buffer_fits(y, NPY_OF_DTYPE[tout[i].dtype], tout[i].rank, shape):
                raise ValueError(f"{self.where}: output {i} has shape "
                                 f"{[shape[a] for a in range(tout[i].rank)]}; the buffer given for it does not fit")
            tout[i].data = cnp.PyArray_DATA(<cnp.ndarray>y)
            outs.append(y)
        with nogil:
            status = rnnf_graph_run(st, tin, tout, n_threads, &err)
        while status == RNNF_HOST:  # an operator outside the C set: run it here, then the rest in C
            self.run_host(st)
            with nogil:
                status = rnnf_graph_resume(st, n_threads, &err)
        graph_check(status, &err, self.where)
        return outs

    cdef int run_host(self, rnnf_graph_state *st) except -1:
        cdef rnnf_tensor hin[16]
        cdef rnnf_tensor hout[16]
        cdef int n_in, n_out, index, i, a
        cdef cnp.npy_intp shape[8]
        check(rnnf_graph_host_io(st, hin, &n_in, hout, &n_out, &index), self.where)
        args = []
        for i in range(n_in):
            if hin[i].dtype < 0:
                args.append(None)
                continue
            for a in range(hin[i].rank):
                shape[a] = hin[i].dims[a]
            view = cnp.PyArray_SimpleNewFromData(hin[i].rank, shape, NPY_OF_DTYPE[hin[i].dtype], hin[i].data)
            args.append(np.array(view))  # a copy: the host function may keep it
        results = self.hosts[index](args)
        for i in range(n_out):
            if hout[i].dtype < 0:
                continue
            for a in range(hout[i].rank):
                shape[a] = hout[i].dims[a]
            dest = cnp.PyArray_SimpleNewFromData(hout[i].rank, shape, NPY_OF_DTYPE[hout[i].dtype], hout[i].data)
            got = np.asarray(results[i])
            if got.shape != dest.shape:
                raise ValueError(f"{self.where}: {self.host_name(index)} gave output {i} of shape {list(got.shape)}; the "
                                 f"graph planned {list(dest.shape)}")
            np.copyto(dest, got, casting="same_kind")
        return 0

    def host_name(self, int index):
        fn = self.hosts[index]
        return getattr(fn, "where", f"host node {index}")

    def profile(self, list inputs, int n_runs=20, int n_threads=0):
        """Seconds per run spent in each C node (in the description's node order), over n_runs runs in a state of
        its own: runs other threads make meanwhile are neither counted nor kept waiting."""
        cdef int n = rnnf_graph_n_nodes(self.ptr)
        cdef double[::1] ns = np.zeros(max(n, 1))
        cdef rnnf_graph_state *st = self.new_state()
        try:
            self.run_in(st, inputs, n_threads, None)  # plan first, so planning is not timed
            check(rnnf_graph_state_profile(st, &ns[0]), self.where)
            for _ in range(n_runs):
                self.run_in(st, inputs, n_threads, None)
        finally:
            rnnf_graph_state_free(st)
        return [ns[i] * 1e-9 / n_runs for i in range(n)]

    def thread_choice(self):
        """(threads the runs use now, recent median seconds per run with 1 thread, with the asked count); the times
        are None until measured. The executor picks whichever is faster for the current input shapes (exec.c)."""
        cdef int n = 1
        cdef double one = 0, asked = 0
        if self.cached != NULL:
            check(rnnf_graph_state_threads(self.cached, &n, &one, &asked), self.where)
        return n, (one or None), (asked or None)

    cdef int in_type_code(self, int i):
        cdef int t = self.in_types[i]
        if t == cnp.NPY_FLOAT32:
            return 0
        if t == cnp.NPY_INT64:
            return 1
        if t == cnp.NPY_INT32:
            return 2
        if t == cnp.NPY_BOOL:
            return 3
        return 4
