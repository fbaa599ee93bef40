"""`load_torch_checkpoint` against hand-built `torch.save` files (no PyTorch needed).

`write_checkpoint` produces files the way torch.save does: Python's C pickler at protocol
2 with a `persistent_id` for storages and tensors reduced to
`torch._utils._rebuild_tensor_v2(...)`. The torch globals are test functions/classes
whose `__module__`/`__qualname__` claim the torch names; while a file is written they are
reachable through stand-in modules in `sys.modules` (pickle checks that a global can be
found again), which are removed right after.
"""

import argparse
import collections
import functools
import io
import os
import pickle
import struct
import sys
import types
import zipfile
from unittest import mock

import numpy as np
import pytest

from lps_keras.convert import UnsafeCheckpointError, load_torch_checkpoint, torch_checkpoint
from lps_keras.convert.torch_checkpoint import (
    CheckpointFormatError,
    PickledGlobal,
    PickledObject,
    TorchCheckpointError,
)

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "torch_files")

# --------------------------------------------------------------------------------------------
# Stand-ins for the globals real checkpoints name


def _fake_function(module, name):
    def function(*args, **kwargs):
        raise AssertionError(f"{module}.{name} must never be called")

    function.__module__ = module
    function.__qualname__ = function.__name__ = name
    return function


def _fake_class(module, name, bases=()):
    return type(name, bases, {"__module__": module, "__qualname__": name})


class _FakeDtype:
    __module__ = "torch"

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return self.name  # pickled as the global torch.<name>, like torch.dtype


_REBUILD_V2 = _fake_function("torch._utils", "_rebuild_tensor_v2")
_REBUILD_PARAMETER = _fake_function("torch._utils", "_rebuild_parameter")
_TORCH_LOAD = _fake_function("torch", "load")
_STORAGE_TYPES = {
    name: _fake_class("torch", name)
    for name in (
        "FloatStorage",
        "DoubleStorage",
        "HalfStorage",
        "BFloat16Storage",
        "LongStorage",
        "IntStorage",
        "ShortStorage",
        "CharStorage",
        "ByteStorage",
        "BoolStorage",
    )
}
_STORAGE_OF_DTYPE = {
    "float32": "FloatStorage",
    "float64": "DoubleStorage",
    "float16": "HalfStorage",
    "int64": "LongStorage",
    "int32": "IntStorage",
    "int16": "ShortStorage",
    "int8": "CharStorage",
    "uint8": "ByteStorage",
    "bool": "BoolStorage",
}
_DTYPES = {name: _FakeDtype(name) for name in ("float32", "float16", "int64", "bfloat16")}

OfficialLPS = _fake_class("learn_poly_sampling.layers.lps", "LPS")
AttributeDict = _fake_class("pytorch_lightning.utilities.parsing", "AttributeDict", (dict,))
ModelCheckpoint = _fake_class("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint")


def _stand_in_modules():
    modules = {}

    def add(qualified, obj):
        module_name, _, name = qualified.rpartition(".")
        parts = module_name.split(".")
        for i in range(1, len(parts) + 1):
            modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
        setattr(modules[module_name], name, obj)

    add("torch._utils._rebuild_tensor_v2", _REBUILD_V2)
    add("torch._utils._rebuild_parameter", _REBUILD_PARAMETER)
    add("torch.load", _TORCH_LOAD)
    for name, cls in _STORAGE_TYPES.items():
        add(f"torch.{name}", cls)
    for name, dtype in _DTYPES.items():
        add(f"torch.{name}", dtype)
    for cls in (OfficialLPS, AttributeDict, ModelCheckpoint):
        add(f"{cls.__module__}.{cls.__qualname__}", cls)
    return modules


# --------------------------------------------------------------------------------------------
# Fake tensors and the writer


class Storage:
    """A torch storage: a flat NumPy array, saved once however many tensors use it."""

    def __init__(self, array, storage_type=None):
        self.array = np.ascontiguousarray(array).reshape(-1)
        dtype = "bool" if self.array.dtype == np.bool_ else str(self.array.dtype)
        # storage_type: a storage class name (torch.FloatStorage) or a dtype name for the
        # UntypedStorage + dtype form of the persistent id.
        self.storage_type = storage_type or _STORAGE_OF_DTYPE[dtype]
        self.view = None  # legacy storage view (offset, size) in elements, as torch < 1.0


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce_ex__(self, protocol):
        args = (self.storage, self.offset, tuple(self.size), tuple(self.stride), False,
                collections.OrderedDict())
        return (_REBUILD_V2, args)


def tensor(array, storage_type=None):
    array = np.array(array, order="C")
    strides = tuple(s // array.itemsize for s in array.strides)
    return Tensor(Storage(array, storage_type), 0, array.shape, strides)


class Parameter:
    def __init__(self, data):
        self.data = data

    def __reduce_ex__(self, protocol):
        return (_REBUILD_PARAMETER, (self.data, True, collections.OrderedDict()))


class Hostile:
    """Runs `function(*args)` when unpickled by plain pickle."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


def write_checkpoint(path, obj, *, legacy=False, prefix=None, protocol=2, byteorder="little"):
    """Writes `obj` as torch.save would: the zip format (top folder `prefix`, default the
    file stem as torch >= 2 does) or, with `legacy=True`, the pre-1.6 format."""
    storages = {}  # id -> (key, Storage)

    class TorchPickler(pickle.Pickler):
        def persistent_id(self, obj):
            if not isinstance(obj, Storage):
                return None
            if id(obj) not in storages:
                key = str(len(storages)) if not legacy else str(140000000 + 8 * len(storages))
                storages[id(obj)] = (key, obj)
            key, storage = storages[id(obj)]
            kind = storage.storage_type
            storage_type = _STORAGE_TYPES[kind] if kind in _STORAGE_TYPES else _DTYPES[kind]
            pid = ("storage", storage_type, key, "cpu", storage.array.size)
            if not legacy:
                return pid
            view = None if storage.view is None else (key + "v",) + storage.view
            return pid + (view,)

    def dump_main(f):
        with mock.patch.dict(sys.modules, _stand_in_modules()):
            TorchPickler(f, protocol=protocol).dump(obj)

    if legacy:
        with open(path, "wb") as f:
            pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
            pickle.dump(1001, f, protocol=2)
            sys_info = {"protocol_version": 1001, "little_endian": True,
                        "type_sizes": {"short": 2, "int": 4, "long": 4}}
            pickle.dump(sys_info, f, protocol=2)
            dump_main(f)
            keys = sorted(key for key, _ in storages.values())
            pickle.dump(keys, f, protocol=2)
            by_key = dict(storages.values())
            for key in keys:
                array = by_key[key].array
                f.write(struct.pack("<q", array.size))
                f.write(array.tobytes())
        return path
    buffer = io.BytesIO()
    dump_main(buffer)
    prefix = prefix or os.path.splitext(os.path.basename(path))[0]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{prefix}/data.pkl", buffer.getvalue())
        archive.writestr(f"{prefix}/byteorder", byteorder)
        for key, storage in storages.values():
            array = storage.array
            if byteorder == "big":
                array = array.astype(array.dtype.newbyteorder(">"))
            archive.writestr(f"{prefix}/data/{key}", array.tobytes())
        archive.writestr(f"{prefix}/version", "3\n")
        archive.writestr(f"{prefix}/.data/version", "3\n")
    return path


def zip_with_pickle(path, data_pkl, entries=None):
    """A zip checkpoint whose data.pkl is the given bytes."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        for name, value in (entries or {}).items():
            archive.writestr(f"archive/{name}", value)
        archive.writestr("archive/version", "3\n")
    return path


class PermissiveUnpickler(pickle.Unpickler):
    """Plain pickle, except that torch globals and storages are dummies: shows what a
    file does when loaded by torch.load(weights_only=False) or plain pickle."""

    def find_class(self, module, name):
        if module.split(".")[0] == "torch":
            return lambda *args, **kwargs: None
        if module.split(".")[0] in ("learn_poly_sampling", "pytorch_lightning"):
            return type(name, (dict,), {})
        return super().find_class(module, name)

    def persistent_load(self, pid):
        return None


def plain_load(path):
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        return PermissiveUnpickler(io.BytesIO(archive.read(name))).load()


# --------------------------------------------------------------------------------------------
# Tensors


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_dtypes_and_values(tmp_path, legacy):
    arrays = {
        "f32": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
        "f16": np.array([[0.5, -2.0], [65504.0, 1e-3]], dtype=np.float16),
        "i64": np.array([-(2**40), 0, 3], dtype=np.int64),
        "bool": np.array([[True, False, True]]),
        "scalar": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }
    path = write_checkpoint(tmp_path / "m.pt", {k: tensor(v) for k, v in arrays.items()},
                            legacy=legacy)
    loaded = load_torch_checkpoint(path)
    assert list(loaded) == list(arrays)
    for key, expected in arrays.items():
        got = loaded[key]
        assert isinstance(got, np.ndarray) and got.dtype == expected.dtype, key
        assert got.shape == expected.shape and got.flags.c_contiguous, key
        np.testing.assert_array_equal(got, expected)


def test_untyped_storage_with_dtype_and_bfloat16(tmp_path):
    # Newer form: ('storage', torch.float32, key, location, numel); bfloat16 as raw bits.
    values = np.array([1.0, -2.5, 2.0**100, 0.0078125], dtype=np.float32)  # exact in bf16
    bf16_bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    obj = {"f": tensor(values, storage_type="float32"),
           "bf": tensor(bf16_bits, storage_type="BFloat16Storage"),
           "bf_dtype": tensor(bf16_bits, storage_type="bfloat16")}
    loaded = load_torch_checkpoint(write_checkpoint(tmp_path / "x.pt", obj))
    np.testing.assert_array_equal(loaded["f"], values)
    for key in ("bf", "bf_dtype"):
        assert loaded[key].dtype == np.float32
        np.testing.assert_array_equal(loaded[key], values)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_views_strides_offset_and_shared_storage(tmp_path, legacy):
    base = np.arange(24, dtype=np.float32)
    storage = Storage(base)
    full = Tensor(storage, 0, (4, 6), (6, 1))
    transposed = Tensor(storage, 0, (6, 4), (1, 6))  # non-contiguous
    window = Tensor(storage, 7, (2, 3), (6, 2))  # offset and a step
    expanded = Tensor(storage, 3, (2, 5), (0, 1))  # repeats rows (stride 0)
    obj = {"full": full, "t": transposed, "window": window, "same": full, "exp": expanded}
    loaded = load_torch_checkpoint(write_checkpoint(tmp_path / "v.pt", obj, legacy=legacy))
    matrix = base.reshape(4, 6)
    np.testing.assert_array_equal(loaded["full"], matrix)
    np.testing.assert_array_equal(loaded["t"], matrix.T)
    np.testing.assert_array_equal(loaded["window"], [[7, 9, 11], [13, 15, 17]])
    np.testing.assert_array_equal(loaded["exp"], np.stack([base[3:8]] * 2))
    for key in ("t", "window", "exp"):
        assert loaded[key].flags.c_contiguous and loaded[key].flags.owndata, key
    # A tensor reached from two keys is one object, as torch.load gives.
    assert loaded["same"] is loaded["full"]


def test_nested_ordered_dicts_and_parameters(tmp_path):
    state = collections.OrderedDict()
    state["conv.weight"] = Parameter(tensor(np.ones((2, 1, 3, 3), np.float32)))
    state["bn.running_var"] = tensor(np.full(2, 0.5, np.float32))
    state["bn.num_batches_tracked"] = tensor(np.array(7, np.int64))
    state._metadata = collections.OrderedDict([("", {"version": 1}), ("bn", {"version": 2})])
    obj = {"model": state, "meta": {"epoch": 4, "names": ["a", "b"], "nested": {"x": (1, 2.5)}},
           "set": {1, 2}, "frozen": frozenset({"a"}), "slice": slice(1, None, 2),
           "complex": 1 + 2j, "bytes": b"\x00\xffab", "empty_bytes": b""}
    loaded = load_torch_checkpoint(write_checkpoint(tmp_path / "n.pt", obj))
    model = loaded["model"]
    assert isinstance(model, collections.OrderedDict) and isinstance(model, dict)
    assert list(model) == ["conv.weight", "bn.running_var", "bn.num_batches_tracked"]
    assert model._metadata == {"": {"version": 1}, "bn": {"version": 2}}
    np.testing.assert_array_equal(model["conv.weight"], np.ones((2, 1, 3, 3), np.float32))
    assert model["bn.num_batches_tracked"].shape == () and model["bn.num_batches_tracked"] == 7
    assert loaded["meta"] == {"epoch": 4, "names": ["a", "b"], "nested": {"x": (1, 2.5)}}
    assert loaded["set"] == {1, 2} and loaded["frozen"] == frozenset({"a"})
    assert loaded["slice"] == slice(1, None, 2) and loaded["complex"] == 1 + 2j
    assert loaded["bytes"] == b"\x00\xffab" and loaded["empty_bytes"] == b""


def lightning_checkpoint(extra_hparams=None):
    hparams = AttributeDict(
        model=functools.partial(OfficialLPS, a=1),
        args=argparse.Namespace(lr=0.1, arch="resnet18", milestones=[30, 60]),
        temperature=np.float64(0.5),
        seed=np.int64(3),
        mean=np.array([0.485, 0.456, 0.406], dtype=np.float32),
        dtype=_DTYPES["float16"],
        **(extra_hparams or {}),
    )
    callback = ModelCheckpoint()
    callback.__dict__.update(monitor="val_acc", best_k=2)
    return {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "1.9.0",
        "state_dict": collections.OrderedDict(w=tensor(np.eye(2, dtype=np.float32))),
        "callbacks": {"ModelCheckpoint{'monitor': 'val_acc'}": {
            "best_model_score": tensor(np.array(0.75, np.float32)), "object": callback}},
        "optimizer_states": [{"state": {0: {"momentum_buffer": tensor(np.zeros(2, np.float32))}},
                              "param_groups": [{"lr": 0.1, "params": [0]}]}],
        "hparams_name": "kwargs",
        "hyper_parameters": hparams,
    }


def test_lightning_checkpoint_hyper_parameters_are_inert_records(tmp_path):
    path = write_checkpoint(tmp_path / "epoch=3.ckpt", lightning_checkpoint())
    loaded = load_torch_checkpoint(path)
    assert loaded["epoch"] == 3 and loaded["global_step"] == 120
    np.testing.assert_array_equal(loaded["state_dict"]["w"], np.eye(2))
    hp = loaded["hyper_parameters"]
    assert type(hp) is dict  # AttributeDict becomes a plain dict
    lps = PickledGlobal("learn_poly_sampling.layers.lps", "LPS")
    partial = hp["model"]
    assert isinstance(partial, PickledObject) and partial.qualname == "functools.partial"
    assert partial.args == (lps,)
    assert partial.state[0] == lps and partial.state[1] == () and partial.state[2] == {"a": 1}
    namespace = hp["args"]
    assert namespace.qualname == "argparse.Namespace"
    assert namespace.state == {"lr": 0.1, "arch": "resnet18", "milestones": [30, 60]}
    assert hp["temperature"] == 0.5 and hp["temperature"].dtype == np.float64
    assert hp["seed"] == 3 and hp["seed"].dtype == np.int64
    np.testing.assert_array_equal(hp["mean"], np.array([0.485, 0.456, 0.406], np.float32))
    assert hp["dtype"] == PickledGlobal("torch", "float16")
    (cb_state,) = loaded["callbacks"].values()
    assert cb_state["best_model_score"] == np.float32(0.75)
    assert cb_state["object"].qualname.endswith("model_checkpoint.ModelCheckpoint")
    assert cb_state["object"].state == {"monitor": "val_acc", "best_k": 2}
    opt = loaded["optimizer_states"][0]
    np.testing.assert_array_equal(opt["state"][0]["momentum_buffer"], np.zeros(2))
    # Records carry data only: nothing to call.
    assert not callable(partial) and not callable(lps) and not callable(namespace)


@pytest.mark.parametrize("prefix", ["archive", "resnet18_lps"])
def test_top_folder_name_varies(tmp_path, prefix):
    path = write_checkpoint(tmp_path / "file.pth", {"w": tensor(np.ones(3, np.float32))},
                            prefix=prefix)
    np.testing.assert_array_equal(load_torch_checkpoint(path)["w"], np.ones(3))


# --------------------------------------------------------------------------------------------
# Hostile files


def _marker_payloads(marker):
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": Hostile(os.system, f"touch '{marker}'"),
        "builtins.exec": Hostile(exec, code),
        "builtins.eval": Hostile(eval, code),
        "numpy.savetxt": Hostile(np.savetxt, str(marker), np.zeros(1)),
    }


@pytest.mark.parametrize("name", ["os.system", "builtins.exec", "builtins.eval", "numpy.savetxt"])
@pytest.mark.parametrize("hidden", [False, True], ids=["alone", "in_hyper_parameters"])
def test_hostile_file_is_refused_before_anything_runs(tmp_path, name, hidden):
    marker = tmp_path / "marker"
    payload = _marker_payloads(marker)[name]
    obj = lightning_checkpoint({"evil": payload}) if hidden else payload
    path = write_checkpoint(tmp_path / "evil.ckpt", obj)

    # The file really is hostile: plain unpickling runs the payload.
    plain_load(path)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(UnsafeCheckpointError) as info:
        load_torch_checkpoint(path)
    assert not marker.exists()
    message = str(info.value)
    global_name = {"os.system": "posix.system"}.get(name, name)
    assert global_name in message and str(path) in message
    assert "refused" in message


def test_hostile_legacy_file_is_refused(tmp_path):
    marker = tmp_path / "marker"
    obj = {"w": tensor(np.ones(2, np.float32)), "x": _marker_payloads(marker)["builtins.exec"]}
    path = write_checkpoint(tmp_path / "evil.pt", obj, legacy=True)
    with pytest.raises(UnsafeCheckpointError, match="builtins.exec"):
        load_torch_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "module, name",
    [
        ("os", "system"),
        ("posix", "system"),
        ("nt", "system"),
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("__builtin__", "eval"),  # Python 2 name, mapped like pickle does
        ("subprocess", "Popen"),
        ("numpy", "savetxt"),
        ("numpy", "load"),
        ("torch", "load"),
        ("torch.nn.modules.linear", "Linear"),
        ("collections", "namedtuple"),
        ("functools", "reduce"),
        ("modelsx", "Evil"),  # looks like an allowed prefix but is not
    ],
)
@pytest.mark.parametrize("opcode", ["GLOBAL", "STACK_GLOBAL"])
def test_other_globals_are_refused(tmp_path, module, name, opcode):
    if opcode == "GLOBAL":
        data = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R."
    else:
        data = (b"\x80\x04" + _short_unicode(module) + _short_unicode(name)
                + b"\x93)R.")  # STACK_GLOBAL, EMPTY_TUPLE, REDUCE, STOP
    path = zip_with_pickle(tmp_path / "g.pt", data)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_torch_checkpoint(path)
    # Protocol 2 maps Python 2 module names (as pickle does); protocol 4 does not.
    mapped = module == "__builtin__" and opcode == "GLOBAL"
    shown = "builtins.eval" if mapped else f"{module}.{name}"
    assert shown in str(info.value) and str(path) in str(info.value)


def _short_unicode(text):
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def test_inert_records_cannot_be_called_through_the_pickle(tmp_path):
    # argparse.Namespace() -> a record; calling that record (REDUCE) is refused.
    data = b"\x80\x02cargparse\nNamespace\n)R)R."
    with pytest.raises(UnsafeCheckpointError, match="argparse.Namespace"):
        load_torch_checkpoint(zip_with_pickle(tmp_path / "c.pt", data))
    # BUILD on something that is not a record/OrderedDict/ndarray is refused.
    data = b"\x80\x02]}b."  # EMPTY_LIST, EMPTY_DICT, BUILD
    with pytest.raises(UnsafeCheckpointError, match="set the state of a list"):
        load_torch_checkpoint(zip_with_pickle(tmp_path / "b.pt", data))


def test_whole_pickled_module_is_refused(tmp_path):
    # torch.save(model) writes nn.Module classes as globals: refused by name.
    data = b"\x80\x02ctorch.nn.modules.conv\nConv2d\n)\x81."
    with pytest.raises(UnsafeCheckpointError, match="torch.nn.modules.conv.Conv2d"):
        load_torch_checkpoint(zip_with_pickle(tmp_path / "m.pt", data))


def test_large_pickled_numpy_array_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(torch_checkpoint, "MAX_NUMPY_ARRAY_BYTES", 1024)
    path = write_checkpoint(tmp_path / "big.pt", {"a": np.zeros(257, np.float32)})
    with pytest.raises(CheckpointFormatError, match="too large"):
        load_torch_checkpoint(path)


def test_object_numpy_array_is_refused(tmp_path):
    path = write_checkpoint(tmp_path / "obj.pt", {"a": np.array([{"x": 1}], dtype=object)})
    with pytest.raises(UnsafeCheckpointError, match="dtype"):
        load_torch_checkpoint(path)


# --------------------------------------------------------------------------------------------
# Damaged files


def test_storage_smaller_than_declared(tmp_path):
    path = write_checkpoint(tmp_path / "s.pt", {"w": tensor(np.ones(4, np.float32))})
    # Rewrite the storage entry with 8 of its 16 bytes.
    with zipfile.ZipFile(path) as archive:
        entries = {n: archive.read(n) for n in archive.namelist()}
    entries["s/data/0"] = entries["s/data/0"][:8]
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in entries.items():
            archive.writestr(name, value)
    with pytest.raises(CheckpointFormatError, match="declares 4 elements of 4 bytes"):
        load_torch_checkpoint(path)


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_view_outside_its_storage(tmp_path, legacy):
    storage = Storage(np.arange(6, dtype=np.float32))
    obj = {"w": Tensor(storage, 2, (3, 2), (2, 1))}  # last element 2 + 4 + 1 = 7 > 5
    path = write_checkpoint(tmp_path / "o.pt", obj, legacy=legacy)
    with pytest.raises(CheckpointFormatError, match="holds only 6 elements"):
        load_torch_checkpoint(path)


def test_huge_expanded_view_is_refused(tmp_path):
    obj = {"w": Tensor(Storage(np.ones(1, np.float32)), 0, (2**20, 2**10), (0, 0))}
    with pytest.raises(CheckpointFormatError, match="refusing to allocate"):
        load_torch_checkpoint(write_checkpoint(tmp_path / "e.pt", obj))


@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated_zip(tmp_path, keep):
    path = write_checkpoint(tmp_path / "t.pt", {"w": tensor(np.ones(100, np.float32))})
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointFormatError, match="zip"):
        load_torch_checkpoint(path)


@pytest.mark.parametrize("cut", [10, 200, -8])
def test_truncated_legacy_file(tmp_path, cut):
    path = write_checkpoint(tmp_path / "t.pt", {"w": tensor(np.ones(10, np.float32))},
                            legacy=True)
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointFormatError):
        load_torch_checkpoint(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(CheckpointFormatError):
        load_torch_checkpoint(path)


def test_big_endian_zip(tmp_path):
    values = {"f": np.array([1.5, -2.0], np.float32), "i": np.array([1, -(2**40)], np.int64),
              "h": np.array([0.25], np.float16), "b": np.array([True, False])}
    path = write_checkpoint(tmp_path / "be.pt", {k: tensor(v) for k, v in values.items()},
                            byteorder="big")
    loaded = load_torch_checkpoint(path)
    for key, want in values.items():
        assert loaded[key].dtype == want.dtype and loaded[key].dtype.isnative, key
        np.testing.assert_array_equal(loaded[key], want)


def test_legacy_storage_view(tmp_path):
    storage = Storage(np.arange(10, dtype=np.float32))
    storage.view = (4, 5)  # the tensor's storage is elements 4..8 of the root storage
    path = write_checkpoint(tmp_path / "lv.pt", {"w": Tensor(storage, 1, (2,), (2,))},
                            legacy=True)
    np.testing.assert_array_equal(load_torch_checkpoint(path)["w"], [5.0, 7.0])


def test_torchscript_archive_is_refused(tmp_path):
    path = zip_with_pickle(tmp_path / "s.pt", b"\x80\x02}.", {"constants.pkl": b"\x80\x02)."})
    with pytest.raises(UnsafeCheckpointError, match="TorchScript"):
        load_torch_checkpoint(path)


def test_many_views_of_one_storage_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(torch_checkpoint, "MAX_EXPANDED_TENSOR_BYTES", 0)
    storage = Storage(np.ones(256, np.float32))
    # Distinct tensor objects over the same storage: each would be a 1 KiB copy.
    views = [Tensor(storage, 0, (256,), (1,)) for _ in range(5)]
    with pytest.raises(CheckpointFormatError, match="refusing to allocate"):
        load_torch_checkpoint(write_checkpoint(tmp_path / "m.pt", views))
    assert len(load_torch_checkpoint(write_checkpoint(tmp_path / "ok.pt", views[:4]))) == 4


def test_ordered_dict_attributes_cannot_shadow_methods(tmp_path):
    state = collections.OrderedDict(a=1)
    state.keys = "not a method"
    with pytest.raises(UnsafeCheckpointError, match="OrderedDict"):
        load_torch_checkpoint(write_checkpoint(tmp_path / "k.pt", state))


def test_compressed_entry_larger_than_the_file_is_refused(tmp_path):
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}.")
        archive.writestr("archive/data/0", bytes(10**6))
    with pytest.raises(CheckpointFormatError, match="more than"):
        load_torch_checkpoint(path)


def test_declared_bytearray_length_is_not_allocated(tmp_path):
    data = b"\x80\x05\x96" + struct.pack("<Q", 2**62) + b"abc."  # BYTEARRAY8 of 2**62 bytes
    with pytest.raises(CheckpointFormatError, match="truncated"):
        load_torch_checkpoint(zip_with_pickle(tmp_path / "b.pt", data))


@pytest.mark.parametrize("name", ["state_zip.pt", "state_legacy.pt"])
def test_damaged_pickles_raise_only_checkpoint_errors(tmp_path, name):
    """Random byte changes in a real file's pickle: every outcome is a loaded object or a
    TorchCheckpointError (no other exception, no memory blow-up)."""
    rng = np.random.default_rng(0)
    source = os.path.join(FIXTURES, name)
    if name.endswith("legacy.pt"):
        with open(source, "rb") as f:
            data, entries, pickle_name = f.read(), None, None
    else:
        with zipfile.ZipFile(source) as archive:
            entries = {n: archive.read(n) for n in archive.namelist()}
        pickle_name = next(n for n in entries if n.endswith("/data.pkl"))
        data = entries[pickle_name]
    path = tmp_path / name
    for _ in range(150):
        damaged = bytearray(data)
        for j in rng.integers(0, min(len(data), 3000), size=rng.integers(1, 4)):
            damaged[j] = rng.integers(0, 256)
        if entries is None:
            path.write_bytes(bytes(damaged))
        else:
            with zipfile.ZipFile(path, "w") as archive:
                for entry, value in entries.items():
                    archive.writestr(entry, bytes(damaged) if entry == pickle_name else value)
        try:
            load_torch_checkpoint(path)
        except TorchCheckpointError:
            pass
