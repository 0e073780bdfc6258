"""A restricted unpickler for PyTorch files: it reads data, and never imports or calls what a file names.

`pickle` resolves every global a file mentions through `find_class`; here that method answers from a fixed table
of stand-ins written in this module (the same allow-list idea as torch's `weights_only` loader,
torch/_weights_only_unpickler.py). A global outside the table raises FormatError naming it, before anything runs.

What the stand-ins do:
- tensors (`torch._utils._rebuild_tensor_v2` and friends) become `LazyTensor` records: the storage bytes live
  elsewhere (zip records, or after the pickle in the legacy format), so `LazyTensor.materialize` turns them into
  numpy arrays once the caller has the bytes;
- storage types (`torch.FloatStorage`, ...) become their numpy dtype; persistent ids become `StorageRef`;
- module classes (`torch.nn.modules.*`, TorchScript `__torch__.*`, and user classes the caller names in
  `allow_classes`) become `PickledObject`: a plain record of the class name and the pickled attributes. They can
  only be rebuilt the way pickle rebuilds an instance (NEWOBJ + BUILD); calling one as a function is refused;
- containers and a few harmless helpers (OrderedDict, set, torch.Size, `_codecs.encode`, numpy scalars) are
  rebuilt as plain Python / numpy values;
- numpy arrays (a pickled dict of arrays, `pickle.dump({"lstm.weight_ih_l0": w, ...}, f)`) become `NumpyArray`
  records: `numpy.core.multiarray._reconstruct` makes an empty record (only for numpy.ndarray itself, never a
  subclass), which takes exactly one BUILD state (version, shape, dtype, fortran flag, raw bytes), or protocol 5's
  `numpy.core.numeric._frombuffer(bytes, dtype, shape, order)` fills one at once. Either way the dtype must be a
  number type (never object, whose elements would be pickles of their own) and the bytes exactly fill the shape;
  `NumpyArray.materialize` makes the array, a view of those bytes.

Two attacks on the unpickler itself are closed here. The records above are sealed once built: pickle's BUILD,
SETITEM(S), APPEND(S) and ADDITEMS opcodes act on whatever object is on the stack, so a file could rebuild a
validated tensor with a stride of -1 (heap memory as weights) or 10^8 (a segfault); each such opcode on a record is
refused by name, and `materialize` checks the record again anyway. And before the C unpickler runs, the pickle's
opcodes are scanned (pickletools.genops reads them without executing anything): a memo index past the number of
opcodes (the C unpickler grows its memo array to the index: 18 GB from an 82-byte file) or a length past the end
of the data is refused before anything is allocated.
"""
from __future__ import annotations

import collections
import io
import pickle
import pickletools
import reprlib
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from ..errors import DeclaredSizeError, FormatError
from ..limits import LoadBudget

# Storage class name -> numpy dtype of its elements. bfloat16 has no numpy dtype: kept as its raw uint16 bits.
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_, "UntypedStorage": np.uint8,
}
TORCH_DTYPES = (
    "float32", "float", "float64", "double", "float16", "half", "bfloat16", "int64", "long", "int32", "int",
    "int16", "short", "int8", "uint8", "bool", "complex64", "complex128",
)


class _Sealed:
    """Records that refuse every pickle opcode that mutates the object it acts on."""

    __slots__ = ()

    def _refuse(self, opcode):
        raise FormatError(f"the pickle's {opcode} opcode rewrites a {type(self).__name__} record after it was "
                          f"checked; refused")

    def __setstate__(self, state):
        self._refuse("BUILD")

    def __setitem__(self, key, value):
        self._refuse("SETITEM(S)")

    def __delitem__(self, key):
        self._refuse("item deletion")

    def append(self, value):
        self._refuse("APPEND(S)")

    def extend(self, values):  # the C unpickler's APPEND and APPENDS both call extend when an object has it
        self._refuse("APPEND(S)")

    def add(self, value):
        self._refuse("ADDITEMS")


def _record(cls):
    """A frozen slotted dataclass, sealed. dataclasses gives such a class a __setstate__ of its own that writes
    every field (it is how they unpickle), which BUILD would call: put the refusing one back."""
    cls = dataclass(frozen=True, slots=True)(cls)
    cls.__setstate__ = _Sealed.__setstate__
    return cls


@_record
class StorageType(_Sealed):
    name: str
    dtype: object  # numpy dtype class, or "bfloat16"

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype == "bfloat16" else np.dtype(self.dtype).itemsize


@_record
class StorageRef(_Sealed):
    """A persistent id ('storage', type, key, location, numel[, view_metadata]); the bytes come later."""

    key: str
    stype: StorageType
    numel: int
    view: Optional[tuple] = None  # legacy views: (view_key, offset, size), in elements


@_record
class LazyTensor(_Sealed):
    storage: StorageRef
    offset: int
    size: tuple
    stride: tuple

    def materialize(self, storage_array: Callable[[StorageRef], np.ndarray], where: str,
                    budget: Optional[LoadBudget] = None, entry: str = "tensor") -> np.ndarray:
        """The tensor as a read-only view of its storage's array (storage_array gives it, already in the dtype the
        caller wants), as torch keeps a tensor a view of its storage: a file naming one storage from thousands of
        tensors, or expanding one element to [40000, 40000] with zero strides, costs no memory here. Checks the
        record again (sizes, strides, offset non-negative ints; inside the storage) and, with a budget, adds the
        tensor's size to what the load will have to hold once the weights are packed."""
        flat = storage_array(self.storage)
        offset, size, stride = self.offset, self.size, self.stride
        if not (_ints(size) and _ints(stride) and _ints((offset,)) and len(size) == len(stride)):
            raise FormatError(f"{where}: tensor record has size {size!r}, stride {stride!r}, offset {offset!r}")
        if self.storage.view is not None:
            _, view_offset, view_size = self.storage.view
            if view_offset + view_size > flat.size:
                raise FormatError(f"{where}: storage view ({view_offset}+{view_size}) runs past storage "
                                  f"{self.storage.key!r} of {flat.size} elements")
            flat = flat[view_offset:view_offset + view_size]
        count = 1
        for s in size:
            count *= s
        if budget is not None:
            budget.take(count * flat.itemsize, f"{entry} of size {list(size)}")
        if count == 0:
            return np.zeros(size, flat.dtype)
        last = offset + sum((s - 1) * st for s, st in zip(size, stride))
        if last >= flat.size:
            raise FormatError(f"{where}: storage {self.storage.key!r} holds {flat.size} elements, but the tensor "
                              f"(offset {offset}, size {size}, stride {stride}) needs {last + 1}")
        item = flat.itemsize
        return np.lib.stride_tricks.as_strided(flat[offset:], shape=size, strides=tuple(st * item for st in stride),
                                               writeable=False)


def _ints(values) -> bool:
    """Non-negative Python ints: what a checked tensor record holds (bool and numpy ints are not produced by us)."""
    return isinstance(values, tuple) and all(type(v) is int and v >= 0 for v in values)


class PickledObject:
    """An instance of an allowed class, kept as data: the class's dotted name and its pickled state."""

    __slots__ = ("rn_args", "rn_state")
    rn_class = "object"

    def __new__(cls, *args):
        obj = object.__new__(cls)
        obj.rn_args = args
        obj.rn_state = {}
        return obj

    def __setstate__(self, state):
        # Module pickles hand over a dict; a (dict, slots) pair comes from classes with __slots__.
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], (dict, type(None))):
            state = {**(state[0] or {}), **(state[1] or {})}
        self.rn_state = state

    def __repr__(self):
        return f"<pickled {self.rn_class}>"


class _DataOnlyClass(type):
    """Metaclass of the stand-in classes: pickle may build an instance (NEWOBJ) but not call the class."""

    def __call__(cls, *args, **kwargs):
        raise FormatError(f"the pickle calls {cls.rn_class}(...) as a function; only plain instances of allowed "
                          f"classes can be read (nothing was imported or called)")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, StorageRef):
        raise FormatError(f"_rebuild_tensor_v2 expects a storage, got {type(storage).__name__}")
    try:
        size, stride, storage_offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(storage_offset)
    except (TypeError, ValueError) as e:
        raise FormatError(f"_rebuild_tensor_v2: bad size/stride/offset ({e})") from None
    if len(size) != len(stride) or min(size + stride + (storage_offset,), default=0) < 0:
        raise FormatError(f"_rebuild_tensor_v2: bad size {size} / stride {stride} / offset {storage_offset}")
    return LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    # `func` can only be one of this module's stand-ins: find_class produced it.
    return func(*args)


def _parameter(data=None, requires_grad=True):
    return data


def _codecs_encode(text, encoding="utf-8"):
    # Protocol 2 pickles bytes as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise FormatError(f"_codecs.encode is only read for latin1 text, got encoding {encoding!r}")
    return text.encode("latin1")


def _restore_type_tag(value, type_str=None):
    return value


def _build_list(items):
    return list(items)


class _NumpyDType:
    """numpy.dtype(str, align, copy) + BUILD: remembers the descriptor and the byte order only."""

    __slots__ = ("descr", "order")

    def __init__(self, descr, align=False, copy=False):
        if not isinstance(descr, str):
            raise FormatError(f"numpy.dtype stand-in expects a type string, got {type(descr).__name__}")
        object.__setattr__(self, "descr", descr)
        object.__setattr__(self, "order", "=")

    def __setattr__(self, key, value):
        raise FormatError("the pickle sets attributes on a numpy.dtype; refused")

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            object.__setattr__(self, "order", state[1])

    def resolve(self) -> np.dtype:
        try:
            dt = np.dtype(self.descr).newbyteorder(self.order)
        except TypeError as e:
            raise FormatError(f"numpy dtype {self.descr!r}: {e}") from None
        if dt.kind not in "biufc":
            raise FormatError(f"numpy dtype {self.descr!r}: only numbers are read (an object array's elements, "
                              f"for one, would be pickles of their own)")
        return dt


def _numpy_scalar(dtype, data=b""):
    if not isinstance(dtype, _NumpyDType) or not isinstance(data, bytes):
        raise FormatError("numpy scalar stand-in expects (numpy.dtype, bytes)")
    dt = dtype.resolve()
    if len(data) != dt.itemsize:
        raise FormatError(f"numpy scalar of dtype {dt} needs {dt.itemsize} bytes, got {len(data)}")
    return np.frombuffer(data, dt)[0].item()


class NumpyArray(_Sealed):
    """A pickled numpy array, checked: shape (non-negative ints), dtype (numbers only), C or Fortran order, and raw
    bytes that exactly fill them. Built once (by _reconstruct + one BUILD, or by _frombuffer); sealed after."""

    __slots__ = ("shape", "dtype", "fortran", "data")

    def __init__(self):
        for slot in self.__slots__:
            object.__setattr__(self, slot, None)

    def __setattr__(self, key, value):
        raise FormatError(f"the pickle sets attribute {key!r} on a numpy array record; refused")

    def __setstate__(self, state):
        # ndarray.__reduce__'s state: (version, shape, dtype, is_fortran, rawdata)
        if not (isinstance(state, tuple) and len(state) == 5 and type(state[0]) is int):
            raise FormatError("numpy array state is not (version, shape, dtype, is_fortran, data)")
        self._fill(state[1], state[2], state[3], state[4])

    def _fill(self, shape, dtype, fortran, data):
        if self.data is not None:
            self._refuse("BUILD")
        if not (isinstance(shape, tuple) and len(shape) <= 32 and _ints(shape)):
            raise FormatError(f"numpy array shape {reprlib.repr(shape)} is not a tuple of non-negative ints")
        if not isinstance(dtype, _NumpyDType):
            raise FormatError(f"numpy array dtype is a {type(dtype).__name__}, expected numpy.dtype")
        dt = dtype.resolve()
        if dt.kind == "c":
            raise FormatError(f"numpy array of dtype {dt}: complex weights are not read")
        if type(fortran) is not bool:
            raise FormatError(f"numpy array fortran flag is {reprlib.repr(fortran)}, expected a bool")
        if not isinstance(data, (bytes, bytearray)):
            raise FormatError(f"numpy array data is a {type(data).__name__}, expected bytes (object arrays, whose "
                              f"elements are pickles of their own, are not read)")
        count = 1
        for n in shape:
            count *= n
        if count * dt.itemsize != len(data):
            raise FormatError(f"numpy array of shape {shape} and dtype {dt} needs {count * dt.itemsize} bytes, the "
                              f"pickle holds {len(data)}")
        for key, value in (("shape", shape), ("dtype", dt), ("fortran", fortran), ("data", bytes(data))):
            object.__setattr__(self, key, value)

    def materialize(self, where: str, budget: Optional[LoadBudget] = None, entry: str = "array") -> np.ndarray:
        """The array (native byte order; floating types as float32, as tensors are read), a view of the pickle's
        bytes where no conversion is needed."""
        if self.data is None:
            raise FormatError(f"{where}: a numpy array record was never given its data")
        if budget is not None:
            budget.take(len(self.data), f"{entry} of size {list(self.shape)}")
        arr = np.frombuffer(self.data, self.dtype).reshape(self.shape, order="F" if self.fortran else "C")
        if arr.dtype.kind == "f" and arr.dtype != np.float32:
            return arr.astype(np.float32)
        return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def _ndarray(*args):
    raise FormatError("the pickle calls numpy.ndarray(...) directly; only numpy's own array pickles are read")


def _numpy_reconstruct(subtype, shape, typecode):
    # ndarray.__reduce__ gives (_reconstruct, (ndarray, (0,), b'b'), state): an empty array that BUILD fills.
    if not (isinstance(subtype, _Fn) and subtype.fn is _ndarray):
        raise FormatError(f"numpy _reconstruct of {reprlib.repr(subtype)}: only numpy.ndarray itself is read")
    if shape != (0,) or typecode not in (b"b", "b"):
        raise FormatError(f"numpy _reconstruct({reprlib.repr(shape)}, {reprlib.repr(typecode)}) is not how numpy "
                          f"pickles an array")
    return NumpyArray()


def _numpy_frombuffer(data, dtype, shape, order):
    # Protocol 5: ndarray.__reduce_ex__ gives (_frombuffer, (PickleBuffer, dtype, shape, order)).
    if order not in ("C", "F"):
        raise FormatError(f"numpy _frombuffer order {reprlib.repr(order)}, expected 'C' or 'F'")
    arr = NumpyArray()
    arr._fill(shape, dtype, order == "F", data)
    return arr


def _device(*args):
    return ":".join(str(a) for a in args)


class _Fn:
    """A stand-in function as pickle sees it: callable, and closed to BUILD (no __dict__, no setattr), so a file
    cannot rewrite this module's functions for the loads that follow."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        object.__setattr__(self, "fn", fn)

    def __call__(self, *args):
        return self.fn(*args)

    def __setattr__(self, key, value):
        raise FormatError(f"the pickle sets attribute {key!r} on {self.fn.__name__}; refused")


_FUNCTIONS = {
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.set": set, "__builtin__.set": set,
    "builtins.frozenset": frozenset, "__builtin__.frozenset": frozenset,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
    "torch.nn.parameter.Parameter": _parameter,
    "torch.Size": tuple,
    "torch.device": _device,
    "_codecs.encode": _codecs_encode,
    "torch.jit._pickle.restore_type_tag": _restore_type_tag,
    "torch.jit._pickle.build_intlist": _build_list,
    "torch.jit._pickle.build_doublelist": _build_list,
    "torch.jit._pickle.build_boollist": _build_list,
    "torch.jit._pickle.build_tensorlist": _build_list,
    "numpy.dtype": _NumpyDType,
    "numpy.core.multiarray.scalar": _numpy_scalar,
    "numpy._core.multiarray.scalar": _numpy_scalar,
    "numpy.ndarray": _ndarray,
    "numpy.core.multiarray._reconstruct": _numpy_reconstruct,
    "numpy._core.multiarray._reconstruct": _numpy_reconstruct,
    "numpy.core.numeric._frombuffer": _numpy_frombuffer,
    "numpy._core.numeric._frombuffer": _numpy_frombuffer,
}
# A class from these namespaces is only ever data to us: torch's own modules, and TorchScript's named types.
_DATA_CLASS_PREFIXES = ("torch.nn.modules.", "__torch__.")


class RestrictedUnpickler(pickle.Unpickler):
    """`load()` one pickle; storages become StorageRef via `persistent_load`, tensors LazyTensor.

    where: text for error messages (file and record). allow_classes: extra dotted class names to read as data
    (user-defined nn.Module subclasses in whole-model pickles), e.g. ("__main__.Net",).
    """

    def __init__(self, file, where: str, allow_classes=(), persistent=True):
        super().__init__(file)
        self.where = where
        self.allow_classes = frozenset(allow_classes)
        self.persistent = persistent
        self.storages: dict[str, StorageRef] = {}
        self._classes: dict[str, type] = {}

    def find_class(self, module, name):
        dotted = f"{module}.{name}"
        if dotted in _FUNCTIONS:
            fn = _FUNCTIONS[dotted]
            # Builtin types (OrderedDict, set, tuple) are immutable already; wrap only what is ours.
            return fn if fn.__module__ in ("builtins", "collections") else _Fn(fn)
        if module in ("torch", "torch.cuda") and name in STORAGE_DTYPES:
            return StorageType(name, STORAGE_DTYPES[name])
        if module == "torch.storage" and name in ("UntypedStorage", "TypedStorage"):
            return StorageType(name, np.uint8)
        if module == "torch" and name in TORCH_DTYPES:
            return f"torch.{name}"
        if dotted.startswith(_DATA_CLASS_PREFIXES) or dotted in self.allow_classes:
            return self._data_class(dotted)
        hint = ""
        if "." not in name and name[:1].isupper() and not module.startswith(("torch", "builtins", "__builtin__")):
            hint = (f" If this is your own nn.Module subclass in a whole-model save, pass "
                    f"allow_classes=[{dotted!r}] to read its attributes as data (the class is still never imported)"
                    f", or save model.state_dict() instead.")
        raise FormatError(f"{self.where}: refused global '{dotted}': it is not on the allow-list of a weights file "
                          f"(nothing was imported or called).{hint}")

    def _data_class(self, dotted):
        if dotted not in self._classes:
            self._classes[dotted] = _DataOnlyClass(dotted.rsplit(".", 1)[-1], (PickledObject,),
                                                   {"rn_class": dotted, "__slots__": ()})
        return self._classes[dotted]

    def persistent_load(self, pid):
        if not self.persistent:
            raise FormatError(f"{self.where}: unexpected persistent id {reprlib.repr(pid)}")
        if isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module":
            # Legacy whole-module saves name each module class with its source text (to warn about edits).
            if isinstance(pid[1], type) and issubclass(pid[1], PickledObject):
                return pid[1]
            raise FormatError(f"{self.where}: module persistent id names {reprlib.repr(pid[1])}, not a module class")
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise FormatError(f"{self.where}: persistent id {reprlib.repr(pid)} is not "
                              f"('storage', type, key, location, numel)")
        stype, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(stype, StorageType):
            raise FormatError(f"{self.where}: persistent id names {stype!r}, not a torch storage type")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise FormatError(f"{self.where}: persistent id {reprlib.repr(pid)} has a bad key or element count")
        view = pid[5] if len(pid) == 6 else None
        if view is not None:
            if not (isinstance(view, tuple) and len(view) == 3 and all(isinstance(v, int) and v >= 0 for v in view[1:])):
                raise FormatError(f"{self.where}: storage view metadata {reprlib.repr(view)} is not "
                                  f"(key, offset, size)")
        ref = StorageRef(key, stype, numel, view)
        known = self.storages.setdefault(key, ref)
        if known.stype != stype:
            raise FormatError(f"{self.where}: storage {key!r} is named both {known.stype.name} and {stype.name}")
        return ref


_MEMO_PUTS = ("PUT", "BINPUT", "LONG_BINPUT")


def _prescan(file, where: str):
    """Walk the opcodes of the pickle at the file's position without executing them; leave the position where it
    was. Refuses a memo index past the number of opcodes read so far (every pickler numbers its memo entries in
    order, so a real file never does that), and lets genops refuse lengths past the end of the data."""
    start = file.tell()
    count = 0
    try:
        for opcode, arg, pos in pickletools.genops(file):
            count += 1
            if opcode.name in _MEMO_PUTS and (not isinstance(arg, int) or arg > count):
                raise DeclaredSizeError(f"{where}: {opcode.name} stores memo entry {arg} at byte {pos}, after "
                                        f"{count} opcodes: a memo that large would be allocated before anything "
                                        f"was read; refused")
    except FormatError:
        raise
    except (ValueError, EOFError, OverflowError, UnicodeDecodeError, MemoryError) as e:
        raise FormatError(f"{where}: not a readable pickle ({type(e).__name__}: {e})") from None
    finally:
        file.seek(start)


def restricted_load(file, where: str, allow_classes=(), persistent=True):
    """Read one pickle from a binary file object with RestrictedUnpickler, turning every failure into FormatError.

    Returns (object, storages): storages maps each storage key the pickle referenced to its StorageRef.
    """
    _prescan(file, where)
    unpickler = RestrictedUnpickler(file, where, allow_classes, persistent)
    try:
        return unpickler.load(), unpickler.storages
    except FormatError as e:
        if str(e).startswith(f"{where}: "):
            raise
        raise FormatError(f"{where}: {e}") from None  # the stand-ins' own checks do not know the file
    except RecursionError:
        raise FormatError(f"{where}: the pickle nests too deeply to read") from None
    except Exception as e:  # noqa: BLE001 - whatever a damaged pickle makes the unpickler raise is a bad file
        raise FormatError(f"{where}: not a readable pickle ({type(e).__name__}: {e})") from None


def restricted_loads(data: bytes, where: str, allow_classes=(), persistent=True):
    return restricted_load(io.BytesIO(data), where, allow_classes, persistent)
