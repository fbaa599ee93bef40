"""Reads files written by `torch.save` without PyTorch and without running code from the file.

Guarantee
---------
`load_torch_checkpoint` never imports a module named by the file and never calls a function
or class named by the file. The pickle inside a checkpoint is interpreted by a restricted
unpickler (Python's own opcode interpreter with every opcode that can call, construct or
mutate replaced): each global the pickle names is looked up in a fixed table
(`_SAFE_BUILDERS`, `_TORCH_STORAGE_TYPES`, `_TORCH_DTYPES`, `INERT_EXACT`,
`INERT_MODULE_PREFIXES`); a name in none of them raises `UnsafeCheckpointError` as soon as
the pickle mentions it, before anything in the file has been called. Functions in the
table are this module's own pure functions (rebuild a tensor from bytes, make a set,
decode latin-1 bytes, ...). Sizes are checked against the bytes actually present before
anything is allocated.

Accepted
--------
* Formats: the zip format (torch >= 1.6: `<top>/data.pkl`, `<top>/data/<key>`,
  `<top>/version`, optional `<top>/byteorder`) and the legacy format (torch < 1.6 or
  `_use_new_zipfile_serialization=False`: magic number, protocol version, sys_info, main
  pickle, storage key list, then for each storage an int64 element count and its bytes).
* Tensors (`torch._utils._rebuild_tensor`, `_rebuild_tensor_v2`, `_rebuild_parameter`,
  `_rebuild_parameter_with_state`, `torch._tensor._rebuild_from_type_v2` for plain
  tensors/parameters) become C-contiguous NumPy arrays with the tensor's dtype, shape,
  strides and storage offset; tensors that share a storage read the same bytes.
  bfloat16 has no NumPy dtype: it becomes float32 (exact, every bfloat16 is a float32).
* Storage types `torch.{Float,Double,Half,BFloat16,Long,Int,Short,Char,Byte,Bool,
  ComplexFloat,ComplexDouble}Storage` (also `torch.cuda.*`), `torch.UntypedStorage` /
  `torch.storage.UntypedStorage`, and torch dtypes (`torch.float32`, ...) in persistent ids.
  Elsewhere (e.g. a hyper-parameter `dtype=torch.float16`) they are `PickledGlobal`s.
  Storage locations (`cpu`, `cuda:0`) are ignored: everything is read to host memory.
* Containers and values: `collections.OrderedDict` (kept as an OrderedDict, which is a
  dict, with its `_metadata` attribute), `torch.Size` (a tuple), `builtins.set`,
  `frozenset`, `slice`, `complex`, `bytes`, `_codecs.encode(str, "latin1")` (how protocol 2
  writes bytes), NumPy scalars and dtypes (`numpy.core.multiarray.scalar`, `numpy.dtype`,
  numeric dtypes only), small NumPy arrays (`numpy.core.multiarray._reconstruct` +
  `numpy.ndarray`, numeric dtypes, at most `MAX_NUMPY_ARRAY_BYTES`), Lightning's
  `AttributeDict` (a plain dict).
* Inert records: a global from `INERT_EXACT` or under `INERT_MODULE_PREFIXES` becomes a
  `PickledGlobal(module, name)`; when the pickle asks to call or instantiate it, the result
  is a `PickledObject(module, name, args, kwargs, state)`. Records are plain frozen data:
  they have no `__call__`, and the pickle can only fill in `state` once (BUILD).

Refused (`UnsafeCheckpointError`)
---------------------------------
Any other global: `os.system`, `builtins.eval`, `builtins.getattr`, `subprocess.Popen`,
`numpy.savetxt`, `torch.load`, `torch.nn.modules.*` (whole pickled modules), TorchScript
archives, ... Calling something that is not a global from the tables (e.g. a
`PickledObject`), and BUILD on anything but a record, an OrderedDict, a NumPy array or
dtype are refused too.

Malformed files (`CheckpointFormatError`): truncated or corrupt zip/pickle, storages
whose declared size exceeds their bytes, zip entries larger than the file (torch.save
never compresses; this refuses zip bombs), tensors whose shape/strides/offset would read
outside their storage, tensor copies beyond `TENSOR_COPY_FACTOR` times the file's data.

Memory: a zip checkpoint's storages are read one entry at a time as they are first used;
a legacy file is read whole. Each tensor is then copied out of its storage.
"""

from __future__ import annotations

import _compat_pickle
import collections
import dataclasses
import io
import math
import os
import pickle
import pickletools
import re
import struct
import zipfile
import zlib
from typing import Any

import numpy as np

__all__ = [
    "CheckpointFormatError",
    "INERT_EXACT",
    "INERT_MODULE_PREFIXES",
    "PickledGlobal",
    "PickledObject",
    "TorchCheckpointError",
    "UnsafeCheckpointError",
    "load_torch_checkpoint",
]


class TorchCheckpointError(ValueError):
    """A file cannot be read as a PyTorch checkpoint."""


class UnsafeCheckpointError(TorchCheckpointError):
    """The file asks to import or call something a plain checkpoint never needs.

    Raised before anything named by the file has been called. The message names the
    global (e.g. ``os.system``) and the file."""


class CheckpointFormatError(TorchCheckpointError):
    """The file is damaged or inconsistent (truncated archive, storage smaller than
    declared, tensor view outside its storage, ...)."""


# Limits on what a file can make us allocate beyond the bytes it contains.
MAX_NUMPY_ARRAY_BYTES = 16 * 2**20
"""Largest NumPy array (pickled with `numpy.ndarray`, not a tensor) accepted."""
MAX_EXPANDED_TENSOR_BYTES = 64 * 2**20
"""A tensor view may repeat storage elements (stride 0); its copy may then be larger
than its storage, but not larger than this."""
TENSOR_COPY_FACTOR = 4
"""All tensors together may take at most this many times the storage bytes in the file
(plus MAX_EXPANDED_TENSOR_BYTES): each tensor is a copy, and a file can name many views of
one storage."""
MAX_TENSOR_DIMS = 64

# --------------------------------------------------------------------------------------------
# Inert records


@dataclasses.dataclass(frozen=True)
class PickledGlobal:
    """A class or function the file names (e.g. the class inside a `functools.partial`).

    It is never imported; it only carries the name."""

    module: str
    name: str

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclasses.dataclass(frozen=True)
class PickledObject:
    """What the file asked to build by calling/instantiating `module.name`: the call's
    `args` and `kwargs`, and the `state` the pickle then set (None if it set none).

    E.g. ``functools.partial(LPS, a=1)`` becomes
    ``PickledObject("functools", "partial", args=(PickledGlobal(..., "LPS"),), kwargs={},
    state=(PickledGlobal(..., "LPS"), (), {"a": 1}, None))`` and an
    ``argparse.Namespace(lr=0.1)`` becomes
    ``PickledObject("argparse", "Namespace", (), {}, {"lr": 0.1})``.
    Nothing is ever called."""

    module: str
    name: str
    args: tuple = ()
    kwargs: dict = dataclasses.field(default_factory=dict)
    state: Any = None

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


INERT_EXACT = frozenset(
    {
        "argparse.Namespace",
        "functools.partial",
        "torch.device",
        "pathlib.Path",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "pathlib.PurePath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
    }
)
"""Globals (``module.name``) kept as inert records: hyper-parameters and paths."""

INERT_MODULE_PREFIXES = (
    # The official learn_poly_sampling repositories' own code (model/layer classes that
    # appear in hyper-parameters, e.g. inside functools.partial).
    "learn_poly_sampling.",
    "models.",
    "layers.",
    # Optimizer / scheduler classes named in hyper-parameters (the LPS Lightning module
    # stores `optimizer=torch.optim.SGD`); only the name is kept, nothing is called.
    "torch.optim.",
    # PyTorch Lightning callback objects and their states.
    "pytorch_lightning.callbacks.",
    "lightning.pytorch.callbacks.",
)
"""Globals in a module under one of these packages (`models`, `models.resnet`, ...; not
`modelsx`) are kept as inert records."""

_ATTRIBUTE_DICTS = frozenset(
    {
        "pytorch_lightning.utilities.parsing.AttributeDict",
        "lightning.pytorch.utilities.parsing.AttributeDict",
        "lightning_fabric.utilities.data.AttributeDict",
        "lightning.fabric.utilities.data.AttributeDict",
        "lightning_utilities.core.apply_func.AttributeDict",
    }
)


def _is_inert(module: str, name: str) -> bool:
    qualname = f"{module}.{name}"
    if qualname in INERT_EXACT:
        return True
    return (module + ".").startswith(INERT_MODULE_PREFIXES)


# --------------------------------------------------------------------------------------------
# Torch storage types and dtypes (constants; never callable)


@dataclasses.dataclass(frozen=True)
class _TorchDtype:
    name: str  # e.g. "float32"
    numpy: str  # NumPy dtype string, little-endian

    @property
    def itemsize(self) -> int:
        return 2 if self.name == "bfloat16" else np.dtype(self.numpy).itemsize


@dataclasses.dataclass(frozen=True)
class _TorchStorageType:
    name: str
    dtype: _TorchDtype


@dataclasses.dataclass(frozen=True)
class _TorchMarker:
    """`torch.Tensor` / `torch.nn.Parameter` as the type argument of _rebuild_from_type_v2."""

    name: str


_DTYPES = {
    "float32": "<f4",
    "float64": "<f8",
    "float16": "<f2",
    "bfloat16": "<u2",  # raw bits; converted to float32
    "int64": "<i8",
    "int32": "<i4",
    "int16": "<i2",
    "int8": "i1",
    "uint8": "u1",
    "bool": "?",
    "complex64": "<c8",
    "complex128": "<c16",
}
_DTYPE_ALIASES = {
    "float": "float32",
    "double": "float64",
    "half": "float16",
    "long": "int64",
    "int": "int32",
    "short": "int16",
    "cfloat": "complex64",
    "cdouble": "complex128",
}
_TORCH_DTYPES = {name: _TorchDtype(name, np_name) for name, np_name in _DTYPES.items()}
_TORCH_DTYPES.update({alias: _TORCH_DTYPES[name] for alias, name in _DTYPE_ALIASES.items()})

_STORAGES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}
_TORCH_STORAGE_TYPES: dict[str, _TorchStorageType] = {}
for _module in ("torch", "torch.cuda"):
    for _name, _dtype in _STORAGES.items():
        _TORCH_STORAGE_TYPES[f"{_module}.{_name}"] = _TorchStorageType(
            _name, _TORCH_DTYPES[_dtype]
        )
for _name in ("torch.UntypedStorage", "torch.storage.UntypedStorage"):
    _TORCH_STORAGE_TYPES[_name] = _TorchStorageType("UntypedStorage", _TORCH_DTYPES["uint8"])

_TORCH_MARKERS = {
    "torch.Tensor": _TorchMarker("torch.Tensor"),
    "torch._tensor.Tensor": _TorchMarker("torch.Tensor"),
    "torch.nn.parameter.Parameter": _TorchMarker("torch.nn.Parameter"),
    "torch.nn.Parameter": _TorchMarker("torch.nn.Parameter"),
}

# --------------------------------------------------------------------------------------------
# Storages and tensors


class _Storage:
    """The bytes of one storage as a 1-D NumPy array of its dtype (read-only view)."""

    def __init__(self, dtype: _TorchDtype, array: np.ndarray | None, key: str):
        self.dtype = dtype
        self.array = array  # None while the legacy reader has not read the data yet
        self.key = key


class _Loader:
    """What the builders need to know about the file being read."""

    def __init__(self, path: str, big_endian: bool = False):
        self.path = path
        self.big_endian = big_endian
        self.storage_bytes = 0  # bytes of all storages read so far
        self.copied_bytes = 0  # bytes of all tensors built so far

    def add_storage(self, array: np.ndarray) -> None:
        self.storage_bytes += array.nbytes

    def add_copy(self, nbytes: int) -> None:
        """Counts a tensor's copy against the budget: distinct views of one storage can
        make the copies larger than the file, but not without bound."""
        budget = TENSOR_COPY_FACTOR * self.storage_bytes + MAX_EXPANDED_TENSOR_BYTES
        if self.copied_bytes + nbytes > budget:
            raise self.error(
                f"its tensors would need more than {budget} bytes, {TENSOR_COPY_FACTOR} "
                f"times the {self.storage_bytes} bytes of data the file holds; refusing to "
                "allocate them"
            )
        self.copied_bytes += nbytes

    def error(self, message: str) -> CheckpointFormatError:
        return CheckpointFormatError(f"{self.path}: {message}")


def _check_int(value, what, loader, minimum=0):
    if type(value) is not int or value < minimum:
        raise loader.error(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _rebuild_tensor(loader, storage, storage_offset, size, stride, *_ignored):
    if not isinstance(storage, _Storage):
        raise loader.error(f"a tensor's storage is {type(storage).__name__}, not a storage")
    size = tuple(size) if isinstance(size, (tuple, list)) else size
    stride = tuple(stride) if isinstance(stride, (tuple, list)) else stride
    if not isinstance(size, tuple) or not isinstance(stride, tuple) or len(size) != len(stride):
        raise loader.error(f"tensor size {size!r} and stride {stride!r} do not match")
    if len(size) > MAX_TENSOR_DIMS:
        raise loader.error(f"tensor has {len(size)} dimensions (at most {MAX_TENSOR_DIMS})")
    _check_int(storage_offset, "a tensor's storage offset", loader)
    for n in size:
        _check_int(n, "a tensor's size", loader)
    for s in stride:
        _check_int(s, "a tensor's stride", loader)
    if storage.array is None:  # legacy first pass: structure only
        return None
    dtype = storage.dtype
    numel = math.prod(size)
    data = storage.array
    if numel == 0:
        out = np.zeros(size, dtype=data.dtype)
    else:
        last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= data.shape[0]:
            raise loader.error(
                f"tensor of size {size} with stride {stride} and offset {storage_offset} "
                f"reads element {last} of storage {storage.key!r}, which holds only "
                f"{data.shape[0]} elements; the file is damaged"
            )
        if numel > data.shape[0] and numel * data.dtype.itemsize > MAX_EXPANDED_TENSOR_BYTES:
            raise loader.error(
                f"tensor of size {size} repeats the elements of storage {storage.key!r} "
                f"into more than {MAX_EXPANDED_TENSOR_BYTES} bytes; refusing to allocate it"
            )
        itemsize = data.dtype.itemsize
        loader.add_copy(numel * itemsize)
        view = np.lib.stride_tricks.as_strided(
            data[storage_offset:],
            shape=size,
            strides=tuple(s * itemsize for s in stride),
            writeable=False,
        )
        out = np.array(view, order="C", copy=True)
    if out.dtype.byteorder == ">":
        out = out.astype(out.dtype.newbyteorder("="))
    if dtype.name == "bfloat16":
        out = (out.astype(np.uint32) << 16).view(np.float32)
    if not out.flags.c_contiguous:  # np.ascontiguousarray would turn 0-d into 1-d
        out = np.array(out, order="C")
    return out


def _rebuild_tensor_v2(loader, storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _rebuild_tensor(loader, storage, storage_offset, size, stride)


def _rebuild_parameter(loader, data, requires_grad=False, backward_hooks=None, state=None):
    if data is not None and not isinstance(data, np.ndarray):
        raise loader.error(f"a parameter's data is {type(data).__name__}, not a tensor")
    return data


_TENSOR_REBUILDERS = {}  # filled below: builder -> True


def _rebuild_from_type_v2(loader, func, new_type, args, state=None):
    if not isinstance(func, _SafeBuilder) or func.function not in _TENSOR_REBUILDERS:
        raise UnsafeCheckpointError(
            f"{loader.path}: this file asks torch._tensor._rebuild_from_type_v2 to call "
            f"{func!r}, which is not a tensor rebuild function; refusing to load it"
        )
    if not isinstance(new_type, _TorchMarker):
        raise UnsafeCheckpointError(
            f"{loader.path}: this file asks to rebuild a tensor as {new_type!r} (a tensor "
            "subclass); only torch.Tensor and torch.nn.Parameter are read; refusing to load it"
        )
    if not isinstance(args, tuple):
        raise loader.error("_rebuild_from_type_v2 arguments are not a tuple")
    return func(*args)


# --------------------------------------------------------------------------------------------
# Other safe builders


def _ordered_dict(loader, *args):
    if args:
        raise loader.error("collections.OrderedDict is called with arguments")
    return collections.OrderedDict()


def _attribute_dict(loader, *args):
    if args:
        raise loader.error("AttributeDict is called with arguments")
    return {}


def _torch_size(loader, dims=()):
    if not isinstance(dims, (tuple, list)):
        raise loader.error(f"torch.Size of {type(dims).__name__}")
    return tuple(_check_int(n, "a torch.Size entry", loader) for n in dims)


def _hashable_items(loader, items, what):
    if not isinstance(items, (list, tuple)):
        raise loader.error(f"{what} is called with {type(items).__name__}, not a list")
    return items


def _make_set(loader, items=()):
    return set(_hashable_items(loader, items, "builtins.set"))


def _make_frozenset(loader, items=()):
    return frozenset(_hashable_items(loader, items, "builtins.frozenset"))


_SCALAR_TYPES = (int, float, type(None))


def _make_slice(loader, *args):
    if not 1 <= len(args) <= 3 or not all(isinstance(a, _SCALAR_TYPES) for a in args):
        raise loader.error(f"builtins.slice called with {args!r}")
    return slice(*args)


def _make_complex(loader, real=0.0, imag=0.0):
    if not all(isinstance(a, (int, float)) for a in (real, imag)):
        raise loader.error("builtins.complex called with non-numbers")
    return complex(real, imag)


def _make_bytes(loader, *args):
    if not args:
        return b""
    if len(args) == 1 and isinstance(args[0], bytes):
        return args[0]
    if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
        return args[0].encode("latin-1")
    raise loader.error("builtins.bytes called with unexpected arguments")


def _codecs_encode(loader, text, encoding="utf-8", errors="strict"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise loader.error("_codecs.encode is only read for latin-1 bytes (pickle protocol 2)")
    return text.encode("latin-1")


_NUMPY_DTYPE_NAME = re.compile(r"[<>|=]?(?:[?bBhHiIlLqQefdgFDG]|[biufc]\d{1,2})")


def _numpy_dtype(loader, name, align=False, copy=False):
    if not isinstance(name, str) or not _NUMPY_DTYPE_NAME.fullmatch(name):
        raise UnsafeCheckpointError(
            f"{loader.path}: this file asks for NumPy dtype {name!r}; only numeric and bool "
            "dtypes are read; refusing to load it"
        )
    # copy=True: numpy's own pickles do this so that BUILD cannot change a shared dtype.
    dtype = np.dtype(name, False, True)
    if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
        raise UnsafeCheckpointError(f"{loader.path}: NumPy dtype {name!r} is not numeric")
    return dtype


def _numpy_scalar(loader, dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc":
        raise UnsafeCheckpointError(f"{loader.path}: NumPy scalar of dtype {dtype!r} refused")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise loader.error(f"NumPy scalar of dtype {dtype} has {len(data or b'')} bytes")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


@dataclasses.dataclass(frozen=True)
class _NumpyNdarrayMarker:
    pass


_NDARRAY = _NumpyNdarrayMarker()


def _numpy_reconstruct(loader, subtype, shape, typecode):
    if subtype is not _NDARRAY:
        raise UnsafeCheckpointError(
            f"{loader.path}: numpy _reconstruct of {subtype!r} (only numpy.ndarray is read)"
        )
    return np.ndarray.__new__(np.ndarray, (0,), "b")


# BUILD state checks


def _build_dtype(loader, dtype: np.dtype, state):
    ok = (
        isinstance(state, tuple)
        and len(state) in (8, 9)
        and state[0] in (3, 4)
        and state[1] in ("<", ">", "|", "=")
        and state[2] is None
        and state[3] is None
        and state[4] is None
        and state[5:8] == (-1, -1, 0)  # what numpy writes for every numeric dtype
        and (len(state) == 8 or state[8] is None)
    )
    if not ok:
        raise UnsafeCheckpointError(f"{loader.path}: unexpected NumPy dtype state {state!r}")
    dtype.__setstate__(state)


def _build_ndarray(loader, array: np.ndarray, state):
    ok = isinstance(state, tuple) and len(state) == 5 and state[0] == 1
    if ok:
        _, shape, dtype, is_fortran, raw = state
        ok = (
            isinstance(shape, tuple)
            and len(shape) <= MAX_TENSOR_DIMS
            and all(type(n) is int and n >= 0 for n in shape)
            and isinstance(dtype, np.dtype)
            and dtype.kind in "biufc"
            and type(is_fortran) is bool
            and isinstance(raw, bytes)
        )
    if not ok:
        raise UnsafeCheckpointError(
            f"{loader.path}: unexpected NumPy array state (only numeric arrays are read)"
        )
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_NUMPY_ARRAY_BYTES:
        raise loader.error(f"a pickled NumPy array of {nbytes} bytes is too large")
    if len(raw) != nbytes:
        raise loader.error(f"a pickled NumPy array of shape {shape} has {len(raw)} bytes")
    array.__setstate__(state)


@dataclasses.dataclass(frozen=True)
class _SafeBuilder:
    """One of this module's functions, standing for the global the pickle named."""

    qualname: str
    function: Any
    loader: _Loader
    newobj: bool = False  # may be used as NEWOBJ class (dict subclasses)

    def __call__(self, *args):
        return self.function(self.loader, *args)

    def __repr__(self):
        return self.qualname


_SAFE_BUILDERS = {
    "collections.OrderedDict": (_ordered_dict, True),
    "torch._utils._rebuild_tensor": (_rebuild_tensor, False),
    "torch._utils._rebuild_tensor_v2": (_rebuild_tensor_v2, False),
    "torch._utils._rebuild_parameter": (_rebuild_parameter, False),
    "torch._utils._rebuild_parameter_with_state": (_rebuild_parameter, False),
    "torch._tensor._rebuild_from_type_v2": (_rebuild_from_type_v2, False),
    "torch.Size": (_torch_size, False),
    "builtins.set": (_make_set, False),
    "builtins.frozenset": (_make_frozenset, False),
    "builtins.slice": (_make_slice, False),
    "builtins.complex": (_make_complex, False),
    "builtins.bytes": (_make_bytes, False),
    "_codecs.encode": (_codecs_encode, False),
}
for _np_module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _SAFE_BUILDERS[f"{_np_module}.scalar"] = (_numpy_scalar, False)
    _SAFE_BUILDERS[f"{_np_module}._reconstruct"] = (_numpy_reconstruct, False)
_SAFE_BUILDERS["numpy.dtype"] = (_numpy_dtype, False)
for _name in _ATTRIBUTE_DICTS:
    _SAFE_BUILDERS[_name] = (_attribute_dict, True)
_TENSOR_REBUILDERS.update(
    {_rebuild_tensor: True, _rebuild_tensor_v2: True, _rebuild_parameter: True}
)

# --------------------------------------------------------------------------------------------
# The restricted unpickler


def _refuse(loader: _Loader, what: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"{loader.path}: this file asks to {what}; it is not a plain checkpoint of tensors "
        "and hyper-parameters, so it is refused without running anything. Load it only if "
        "you trust its author, with PyTorch, and save the state_dict again with torch.save."
    )


class _RestrictedUnpickler(pickle._Unpickler):
    """Python's pure-Python unpickler with every opcode that calls, constructs or mutates
    replaced (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ, BUILD, APPEND(S), SETITEM(S),
    ADDITEMS), BYTEARRAY8 reading before it allocates, and `find_class` answering only
    from the tables above."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, data: bytes, loader: _Loader, storages=None):
        super().__init__(io.BytesIO(data), encoding="latin1")
        self.loader = loader
        # storages(key, dtype, numel) -> _Storage; None: this pickle may name no storage.
        self.storages = storages

    # -- globals --------------------------------------------------------------------------
    def find_class(self, module, name):
        if not isinstance(module, str) or not isinstance(name, str):
            raise self.loader.error("a global name is not a string")
        if self.proto < 3 and self.fix_imports:
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        qualname = f"{module}.{name}"
        if qualname in _SAFE_BUILDERS:
            function, newobj = _SAFE_BUILDERS[qualname]
            return _SafeBuilder(qualname, function, self.loader, newobj)
        if qualname in _TORCH_STORAGE_TYPES or (module == "torch" and name in _TORCH_DTYPES):
            return PickledGlobal(module, name)  # read by persistent_load; inert elsewhere
        if qualname in _TORCH_MARKERS:
            return _TORCH_MARKERS[qualname]
        if qualname == "numpy.ndarray":
            return _NDARRAY
        if _is_inert(module, name):
            return PickledGlobal(module, name)
        alias = f" (os.{name})" if module in ("posix", "nt") else ""
        raise _refuse(self.loader, f"use {qualname}{alias}")

    # -- storages -------------------------------------------------------------------------
    def persistent_load(self, pid):
        loader = self.loader
        if self.storages is None:
            raise loader.error("this pickle refers to a storage where none can be")
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            kind = pid[0] if isinstance(pid, tuple) and pid else pid
            if kind == "module":
                raise _refuse(loader, "rebuild a whole pickled torch.nn.Module (torch.save(model))")
            raise loader.error(f"unknown persistent id {kind!r}")
        if len(pid) not in (5, 6):
            raise loader.error(f"storage id of {len(pid)} fields")
        storage_type, key, _location, numel = pid[1:5]
        view_metadata = pid[5] if len(pid) == 6 else None
        qualname = storage_type.qualname if isinstance(storage_type, PickledGlobal) else None
        if qualname in _TORCH_STORAGE_TYPES:
            dtype = _TORCH_STORAGE_TYPES[qualname].dtype
        elif qualname and storage_type.module == "torch" and storage_type.name in _TORCH_DTYPES:
            dtype = _TORCH_DTYPES[storage_type.name]
        else:
            raise loader.error(f"storage type {storage_type!r} is not a torch storage type")
        if not isinstance(key, str):
            raise loader.error(f"storage key {key!r} is not a string")
        _check_int(numel, "a storage's element count", loader)
        storage = self.storages(key, dtype, numel)
        if view_metadata is not None:
            ok = isinstance(view_metadata, tuple) and len(view_metadata) == 3
            if not ok:
                raise loader.error(f"storage view metadata {view_metadata!r}")
            view_key, offset, view_size = view_metadata
            _check_int(offset, "a storage view offset", loader)
            _check_int(view_size, "a storage view size", loader)
            if storage.array is not None:
                if offset + view_size > storage.array.shape[0]:
                    raise loader.error(f"storage view {view_key!r} lies outside its storage")
                storage = _Storage(dtype, storage.array[offset : offset + view_size], key)
        return storage

    # -- calls ----------------------------------------------------------------------------
    def _call(self, func, args, kwargs=None, newobj=False):
        kwargs = kwargs or {}
        if not isinstance(args, tuple) or not isinstance(kwargs, dict):
            raise self.loader.error("call arguments are not a tuple")
        if isinstance(func, PickledGlobal):
            return PickledObject(func.module, func.name, args, dict(kwargs))
        if isinstance(func, _SafeBuilder) and (func.newobj or not newobj):
            if kwargs:
                raise self.loader.error(f"{func.qualname} called with keyword arguments")
            if newobj:
                return func()
            return func(*args)
        raise _refuse(self.loader, f"call {_describe(func)}, which is not a known function")

    def _load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        self.stack[-1] = self._call(func, args)

    def _load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._call(cls, args, newobj=True))

    def _load_newobj_ex(self):
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._call(cls, args, kwargs, newobj=True))

    def _instantiate(self, klass, args):
        self.append(self._call(klass, tuple(args), newobj=True))

    def _load_inst(self):
        module = self.readline()[:-1].decode("ascii")
        name = self.readline()[:-1].decode("ascii")
        klass = self.find_class(module, name)
        self._instantiate(klass, self.pop_mark())

    def _load_obj(self):
        args = self.pop_mark()
        cls = args.pop(0)
        self._instantiate(cls, args)

    # -- state and containers -------------------------------------------------------------
    def _load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        loader = self.loader
        if isinstance(inst, PickledObject):
            if inst.state is not None:
                raise loader.error(f"the state of {inst.qualname} is set twice")
            object.__setattr__(inst, "state", state)
        elif type(inst) is collections.OrderedDict:
            if isinstance(state, tuple) and len(state) == 2 and state[1] is None:
                state = state[0]
            if state is None:
                return
            # torch state_dicts carry `_metadata`; no attribute may shadow a dict method.
            if not isinstance(state, dict) or not all(
                isinstance(k, str) and not k.startswith("__")
                and not hasattr(collections.OrderedDict, k)
                for k in state
            ):
                raise _refuse(loader, "set attributes other than _metadata on an OrderedDict")
            for k, v in state.items():
                setattr(inst, k, v)
        elif type(inst) is np.dtype or isinstance(inst, np.dtype):
            _build_dtype(loader, inst, state)
        elif type(inst) is np.ndarray:
            _build_ndarray(loader, inst, state)
        else:
            raise _refuse(loader, f"set the state of {_describe(inst)}")

    def _load_append(self):
        value = self.stack.pop()
        self._list_target().append(value)

    def _load_appends(self):
        items = self.pop_mark()
        self._list_target().extend(items)

    def _list_target(self):
        target = self.stack[-1]
        if type(target) is not list:
            raise _refuse(self.loader, f"append items to {_describe(target)}")
        return target

    def _dict_target(self):
        target = self.stack[-1]
        if type(target) not in (dict, collections.OrderedDict):
            raise _refuse(self.loader, f"set items of {_describe(target)}")
        return target

    def _load_setitem(self):
        value = self.stack.pop()
        key = self.stack.pop()
        self._dict_target()[key] = value

    def _load_setitems(self):
        items = self.pop_mark()
        target = self._dict_target()
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    def _load_additems(self):
        items = self.pop_mark()
        target = self.stack[-1]
        if type(target) is not set:
            raise _refuse(self.loader, f"add items to {_describe(target)}")
        target.update(items)

    def _load_bytearray8(self):
        # pickle's own preallocates the declared length before reading.
        (size,) = struct.unpack("<Q", self.read(8))
        data = self.read(size)
        if len(data) != size:
            raise pickle.UnpicklingError("BYTEARRAY8 is truncated")
        self.append(bytearray(data))

    for _opcode, _method in (
        (pickle.BYTEARRAY8, _load_bytearray8),
        (pickle.REDUCE, _load_reduce),
        (pickle.NEWOBJ, _load_newobj),
        (pickle.NEWOBJ_EX, _load_newobj_ex),
        (pickle.INST, _load_inst),
        (pickle.OBJ, _load_obj),
        (pickle.BUILD, _load_build),
        (pickle.APPEND, _load_append),
        (pickle.APPENDS, _load_appends),
        (pickle.SETITEM, _load_setitem),
        (pickle.SETITEMS, _load_setitems),
        (pickle.ADDITEMS, _load_additems),
    ):
        dispatch[_opcode[0]] = _method
    del _opcode, _method


def _describe(obj) -> str:
    if isinstance(obj, (PickledGlobal, PickledObject)):
        return f"an object of {obj.qualname}"
    if isinstance(obj, _SafeBuilder):
        return obj.qualname
    return f"a {type(obj).__name__}"


def _unpickle(data: bytes, loader: _Loader, storages=None):
    unpickler = _RestrictedUnpickler(data, loader, storages)
    try:
        return unpickler.load()
    except TorchCheckpointError:
        raise
    except RecursionError as exc:
        raise loader.error("the pickle is nested too deeply") from exc
    except MemoryError as exc:
        raise loader.error("the pickle asks for more memory than there is") from exc
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, KeyError, IndexError,
            AttributeError, struct.error, UnicodeDecodeError, OverflowError) as exc:
        raise loader.error(f"the pickle is malformed ({type(exc).__name__}: {exc})") from exc


# --------------------------------------------------------------------------------------------
# File formats

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def load_torch_checkpoint(path) -> Any:
    """Reads a file written by `torch.save` without PyTorch and without running its code.

    Returns the saved object with every tensor as a C-contiguous NumPy array (its dtype,
    shape, strides and storage offset honoured; bfloat16 as float32), OrderedDicts as
    OrderedDicts (dicts), and allow-listed classes/functions as inert `PickledGlobal` /
    `PickledObject` records. No code named by the file is imported or called: see the
    module docstring for what is accepted and refused.

    Raises `UnsafeCheckpointError` (naming the global and the file) when the file refers
    to anything else, and `CheckpointFormatError` when it is damaged or inconsistent.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        return _load_zip(path)
    return _load_legacy(path)


def _load_zip(path: str):
    loader = _Loader(path)
    file_size = os.path.getsize(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise loader.error(f"truncated or corrupt zip archive ({exc})") from exc
    with archive:
        infos = {info.filename: info for info in archive.infolist()}
        for info in infos.values():
            # torch.save stores entries uncompressed: no entry can be larger than the file.
            if info.compress_size > file_size or info.file_size > file_size:
                raise loader.error(
                    f"zip entry {info.filename!r} declares {info.file_size} bytes, more than "
                    f"the {file_size} bytes of the file (torch.save never compresses)"
                )
        pickles = [name for name in infos if name.count("/") == 1 and name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise loader.error(
                f"expected one '<folder>/data.pkl' in the archive, found {len(pickles)}; "
                "is this a torch.save file?"
            )
        prefix = pickles[0][: -len("data.pkl")]
        if prefix + "constants.pkl" in infos or prefix + "code/" in infos or any(
            n.startswith(prefix + "code/") for n in infos
        ):
            raise _refuse(loader, "load a TorchScript program (torch.jit.save), not a checkpoint")

        def read(name):
            try:
                return archive.read(name)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
                    RuntimeError, zlib.error) as exc:
                raise loader.error(f"cannot read {name!r}: {exc}") from exc

        if prefix + "byteorder" in infos:
            order = read(prefix + "byteorder").decode("ascii", "replace").strip()
            if order not in ("little", "big"):
                raise loader.error(f"unknown byte order {order!r}")
            loader.big_endian = order == "big"
        data_pkl = read(pickles[0])
        cache: dict[str, _Storage] = {}

        def storage(key, dtype, numel):
            if key in cache:
                if cache[key].dtype.itemsize != dtype.itemsize:
                    raise loader.error(f"storage {key!r} is read with two element sizes")
                return cache[key]
            name = f"{prefix}data/{key}"
            if name not in infos:
                raise loader.error(f"storage {key!r} has no entry {name!r} in the archive")
            nbytes = numel * dtype.itemsize
            if nbytes > infos[name].file_size:
                raise loader.error(
                    f"storage {key!r} declares {numel} elements of {dtype.itemsize} bytes "
                    f"({nbytes} bytes) but its entry holds {infos[name].file_size} bytes"
                )
            raw = read(name)
            if len(raw) < nbytes:
                raise loader.error(f"storage {key!r} is truncated")
            cache[key] = _Storage(dtype, _as_array(raw[:nbytes], dtype, loader), key)
            loader.add_storage(cache[key].array)
            return cache[key]

        return _unpickle(data_pkl, loader, storage)


def _as_array(raw: bytes, dtype: _TorchDtype, loader: _Loader) -> np.ndarray:
    np_dtype = np.dtype(dtype.numpy)
    if loader.big_endian and np_dtype.itemsize > 1:
        np_dtype = np_dtype.newbyteorder(">")
    return np.frombuffer(raw, dtype=np_dtype)


def _pickle_end(data: bytes, start: int, loader: _Loader) -> int:
    """Offset just past the pickle starting at `start` (opcodes are parsed, not run)."""
    stream = io.BytesIO(data)
    stream.seek(start)
    try:
        for opcode, _arg, _pos in pickletools.genops(stream):
            if opcode.name == "STOP":
                return stream.tell()
    except (ValueError, EOFError, struct.error, UnicodeDecodeError) as exc:
        raise loader.error(f"truncated or malformed pickle ({exc})") from exc
    raise loader.error("truncated pickle")


def _load_legacy(path: str):
    loader = _Loader(path)
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    parts = []
    for _ in range(3):
        end = _pickle_end(data, pos, loader)
        parts.append(_unpickle(data[pos:end], loader))
        pos = end
    magic, protocol, sys_info = parts
    if magic != _LEGACY_MAGIC:
        raise loader.error("not a torch.save file (wrong magic number)")
    if protocol != _LEGACY_PROTOCOL:
        raise loader.error(f"legacy protocol version {protocol!r} is not {_LEGACY_PROTOCOL}")
    if not isinstance(sys_info, dict):
        raise loader.error("sys_info is not a dict")
    loader.big_endian = sys_info.get("little_endian", True) is False
    type_sizes = sys_info.get("type_sizes", {})
    if isinstance(type_sizes, dict) and type_sizes.get("long", 4) not in (4, 8):
        raise loader.error(f"unexpected type sizes {type_sizes!r}")

    main_start = pos
    main_end = _pickle_end(data, main_start, loader)
    keys_end = _pickle_end(data, main_end, loader)
    keys = _unpickle(data[main_end:keys_end], loader)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise loader.error("the storage key list is not a list of strings")

    # Pass 1: learn each storage's dtype (from the persistent ids) without its data.
    declared: dict[str, tuple[_TorchDtype, int]] = {}

    def declare(key, dtype, numel):
        if key in declared and declared[key][0].itemsize != dtype.itemsize:
            raise loader.error(f"storage {key!r} is read with two element sizes")
        declared.setdefault(key, (dtype, numel))
        return _Storage(dtype, None, key)

    main = data[main_start:main_end]
    _unpickle(main, loader, declare)

    # The storages' bytes: for each key, an int64 element count then the elements.
    storages: dict[str, _Storage] = {}
    pos = keys_end
    count_format = ">q" if loader.big_endian else "<q"
    for key in keys:
        if key not in declared:
            raise loader.error(f"storage {key!r} is listed but never used")
        dtype, numel = declared[key]
        if pos + 8 > len(data):
            raise loader.error(f"the file ends before storage {key!r}")
        (count,) = struct.unpack_from(count_format, data, pos)
        pos += 8
        if count < 0 or count != numel:
            raise loader.error(
                f"storage {key!r} declares {numel} elements but its data has {count}"
            )
        nbytes = count * dtype.itemsize
        if pos + nbytes > len(data):
            raise loader.error(
                f"storage {key!r} declares {nbytes} bytes but only {len(data) - pos} remain"
            )
        storages[key] = _Storage(dtype, _as_array(data[pos : pos + nbytes], dtype, loader), key)
        loader.add_storage(storages[key].array)
        pos += nbytes
    missing = sorted(set(declared) - set(storages))
    if missing:
        raise loader.error(f"storages {missing} are used but have no data")

    def lookup(key, dtype, numel):
        return storages[key]

    # Pass 2: the real objects.
    return _unpickle(main, loader, lookup)
