"""A stand-in accelerator for CPU-only tests: tensors that hold CPU data but report device ``meta``, and fail on any
op that mixes them with CPU tensors, as CUDA would.

Why: everything here runs on CPU in CI, so a tensor created on the wrong device (``torch.zeros(n)`` without
``device=``, ``torch.arange``, a CPU mask indexing a device tensor, ``torch.as_tensor(numpy)``) passes every test and
only fails (or silently syncs) on the GPU. Plain ``meta`` tensors do not catch it: on torch 2.x elementwise ops, cat
and where refuse a CPU tensor next to a meta one, but mm, linear, bmm, einsum and indexing pass silently, and meta
cannot run the data-dependent ops (nonzero, .item(), .tolist(), numpy) that Sinkhorn and packing need.

Design: `DeviceTensor` is a wrapper subclass (``_make_wrapper_subclass``) around real CPU data that reports
``device="meta"``. Every aten op on it goes through `_dispatch`, which unwraps, checks that no plain CPU tensor of
one or more dimensions sits next to a device tensor (0-dim CPU scalars are allowed, as CUDA allows them), runs the
op on the real data and rewraps the outputs. `on_device` also installs
- a TorchDispatchMode, so that factories carrying ``device=x.device`` (zeros, arange, full, randint, empty_like,
  new_zeros ...) build real CPU data wrapped as device tensors, and
- a TorchFunctionMode for ``torch.tensor`` / ``as_tensor`` / ``asarray`` / ``Tensor.new_tensor``, which build a real
  meta tensor (no data) below the dispatcher's Python key and would otherwise lose their values.
``.cpu()`` / ``.to("cpu")`` return plain CPU tensors (a legal transfer), ``.to(x.device)`` wraps, ``copy_`` between
the two is allowed (an explicit transfer), ``.numpy()`` on a device tensor fails as on CUDA. Autograd runs above the
subclass, so backward ops are checked too. Violations raise `DeviceMismatchError` and are also recorded on the
context (code that catches exceptions broadly cannot hide them). Run device code inside `on_device`: outside it a
factory with ``device=x.device`` builds a data-less meta tensor (flagged at its first use).

Limits: CUDA accepts 0-dim CPU tensors only in elementwise/reduction ops; here they pass everywhere (a 0-dim CPU
index into an embedding would not be caught). SDPA picks its kernel by device and takes the math path for "meta".
Code that branches on ``x.is_cuda`` takes its CPU branch (force the CUDA-only paths, e.g. ``loss.kernels=triton``,
and check Triton launches with `CheckedKernel`).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

__all__ = ["DEVICE", "DeviceTensor", "DeviceMismatchError", "DeviceChecker", "on_device", "to_device",
           "module_to_device", "require_device", "CheckedKernel"]

DEVICE = torch.device("meta")
"""The device that device tensors report."""
CPU = torch.device("cpu")
_TRANSFERS = {torch.ops.aten.copy_.default}  # cross-device copy_ is an explicit transfer on CUDA too
_CONSTRUCTORS = {torch.tensor, torch.as_tensor, torch.asarray}
# Ops that make the host wait for the device on CUDA (counted, not refused: some are the point, e.g. .item()).
_SYNCS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default,
          torch.ops.aten.masked_select.default, torch.ops.aten.is_nonzero.default, torch.ops.aten.equal.default}
_MASK_INDEX = {torch.ops.aten.index.Tensor, torch.ops.aten.index_put_.default, torch.ops.aten.index_put.default}


class DeviceMismatchError(RuntimeError):
    """An op got tensors on different devices (CUDA: "Expected all tensors to be on the same device")."""


class DeviceTensor(torch.Tensor):
    """Real CPU data (``.elem``) that reports `DEVICE`; see the module docstring."""

    elem: torch.Tensor
    __torch_function__ = torch._C._disabled_torch_function_impl  # ops go straight to __torch_dispatch__

    @staticmethod
    def __new__(cls, elem: torch.Tensor):
        assert type(elem) is torch.Tensor and elem.device == CPU, f"wrap plain CPU tensors, got {type(elem)}"
        out = torch.Tensor._make_wrapper_subclass(cls, elem.shape, strides=elem.stride(), dtype=elem.dtype,
                                                  storage_offset=elem.storage_offset(), layout=elem.layout,
                                                  device=DEVICE, requires_grad=False)
        out.elem = elem
        return out

    def __repr__(self, *, tensor_contents=None) -> str:
        return f"DeviceTensor({self.elem!r})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _dispatch(func, args, kwargs or {})


def _describe(t) -> str:
    kind = "device" if isinstance(t, DeviceTensor) else t.device.type
    return f"{kind}{tuple(t.shape)}:{str(t.dtype).removeprefix('torch.')}"


_active: list[DeviceChecker] = []


def _sync(what: str) -> None:
    for checker in _active:
        checker.syncs[what] += 1


def _fail(message: str):
    for checker in _active:
        checker.violations.append(message)
    raise DeviceMismatchError(message)


def _dispatch(func, args, kwargs):
    """Check, unwrap, run on the real data, rewrap (see the module docstring)."""
    flat, _ = tree_flatten((args, kwargs))
    tensors = [t for t in flat if isinstance(t, torch.Tensor)]
    on_dev = [t for t in tensors if isinstance(t, DeviceTensor)]
    if lost := [t for t in tensors if not isinstance(t, DeviceTensor) and t.device.type == "meta"]:
        _fail(f"{func}: a data-less meta tensor {_describe(lost[0])} (a constructor bypassed the checker)")
    if on_dev and func not in _TRANSFERS:
        cpu = [t for t in tensors if not isinstance(t, DeviceTensor) and t.dim() > 0]
        if cpu:
            _fail(f"{func}: CPU tensor(s) {', '.join(map(_describe, cpu))} next to device tensor(s) "
                  f"{', '.join(map(_describe, on_dev))}")
    device = kwargs.get("device")
    wrap = on_dev != [] if device is None else torch.device(device) == DEVICE  # device= decides for factories
    if device is not None:
        kwargs = {**kwargs, "device": CPU}
    bool_index = func in _MASK_INDEX and any(t is not None and t.dtype == torch.bool for t in args[1])
    if on_dev and (func in _SYNCS or bool_index or (func is torch.ops.aten._to_copy.default and not wrap)
                   or (func in _TRANSFERS and not isinstance(args[0], DeviceTensor))):
        _sync(str(func).removeprefix("aten."))  # a read of device data on the host (.item(), .cpu(), nonzero ...)
    reals = {id(t.elem): t for t in on_dev}
    out = func(*tree_map(lambda t: t.elem if isinstance(t, DeviceTensor) else t, args),
               **tree_map(lambda t: t.elem if isinstance(t, DeviceTensor) else t, kwargs))

    def rewrap(t):
        if not isinstance(t, torch.Tensor):
            return t
        if id(t) in reals:  # in-place / out= ops return their argument: give back its wrapper
            return reals[id(t)]
        if func in _TRANSFERS:  # copy_ returns its destination, plain or wrapped as it came
            return t
        return DeviceTensor(t) if wrap else t

    return tree_map(rewrap, out)


class _FactoryMode(TorchDispatchMode):
    """Routes every op through `_dispatch`, so that factories with ``device=DEVICE`` build device tensors."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _dispatch(func, args, kwargs or {})


class _ConstructorMode(TorchFunctionMode):
    """torch.tensor & co. with ``device=DEVICE`` (or ``device_tensor.new_tensor``): build on CPU, then wrap."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.tolist and isinstance(args[0], DeviceTensor):
            _sync("tolist")
            return args[0].elem.tolist()  # a device-to-host copy, legal on CUDA (torch refuses it for subclasses)
        if func is torch.Tensor.numpy and isinstance(args[0], DeviceTensor):
            _fail(f"numpy() of device tensor {_describe(args[0])}: CUDA needs .cpu() first")
        if func is torch.Tensor.new_tensor and isinstance(args[0], DeviceTensor) and "device" not in kwargs:
            kwargs = {**kwargs, "device": DEVICE, "dtype": kwargs.get("dtype", args[0].dtype)}
            func, args = torch.tensor, args[1:]
        device = kwargs.get("device")
        if func in _CONSTRUCTORS | {torch.Tensor.new_tensor} and device is not None \
                and torch.device(device) == DEVICE:
            real = func(*args, **{**kwargs, "device": CPU})
            real = real.elem if isinstance(real, DeviceTensor) else real
            if isinstance(args[0], torch.Tensor) and real is args[0]:
                real = real.clone()  # as_tensor(cpu_tensor, device=cuda) copies
            return DeviceTensor(real)
        return func(*args, **kwargs)


class DeviceChecker:
    """The active checker: ``violations`` lists every mismatch seen while it was active (raised or not), ``syncs``
    counts the ops that would make the host wait for the device on CUDA (``.item()``, ``.cpu()``, ``nonzero``...)."""

    def __init__(self):
        self.violations: list[str] = []
        self.syncs: Counter[str] = Counter()


@contextlib.contextmanager
def on_device() -> Iterator[DeviceChecker]:
    """Activates the checker (factories with ``device=DEVICE`` build device tensors; mismatches raise)."""
    checker = DeviceChecker()
    _active.append(checker)
    try:
        with _ConstructorMode(), _FactoryMode():
            yield checker
    finally:
        _active.remove(checker)


def to_device(obj):
    """Tensors in a (nested) batch -> device tensors (copies); anything else unchanged."""
    return tree_map(lambda t: DeviceTensor(t.detach().clone()) if type(t) is torch.Tensor else t, obj)


def module_to_device(module: nn.Module) -> nn.Module:
    """Moves every parameter and buffer of ``module`` to the device in place, keeping ties (shared tensors stay
    shared) and ``requires_grad``; like ``module.to("cuda")``, plain tensor attributes stay on the CPU."""
    moved: dict[int, torch.Tensor] = {}
    for sub in module.modules():
        for table in (sub._parameters, sub._buffers):
            for name, t in table.items():
                if t is None or isinstance(t, DeviceTensor):
                    continue
                if id(t) not in moved:
                    new = DeviceTensor(t.detach())
                    moved[id(t)] = nn.Parameter(new, t.requires_grad) if isinstance(t, nn.Parameter) else new
                table[name] = moved[id(t)]
    return module


def require_device(what: str, tree) -> None:
    """Fails unless every tensor in ``tree`` is a device tensor: for calls that take device pointers (kernels,
    NCCL collectives), where even a 0-dim CPU tensor is an error."""
    flat, _ = tree_flatten(tree)
    if cpu := [t for t in flat if isinstance(t, torch.Tensor) and not isinstance(t, DeviceTensor)]:
        _fail(f"{what}: CPU tensor argument(s) {', '.join(map(_describe, cpu))}")


class CheckedKernel:
    """A Triton kernel whose launches (``kernel[grid](*args)``) require every tensor argument to be a device tensor
    (a CPU pointer in a CUDA launch is an illegal memory access), then run the real kernel on the CPU data (under
    ``TRITON_INTERPRET=1``). Patched over a module's kernel, it checks the launch wrappers' allocations and views."""

    def __init__(self, kernel, name: str):
        self.kernel, self.name, self.launches = kernel, name, 0

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            require_device(f"Triton kernel {self.name}", (args, kwargs))
            self.launches += 1
            unwrap = tree_map(lambda t: t.elem if isinstance(t, DeviceTensor) else t, (args, kwargs))
            return self.kernel[grid](*unwrap[0], **unwrap[1])
        return launch
