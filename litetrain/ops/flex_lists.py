"""TensorFlow's TensorList ops (Flex), as Keras RNN layers converted with SELECT_TF_OPS use
them inside WHILE loops: EmptyTensorList, TensorListReserve, TensorListFromTensor,
TensorListGetItem, TensorListSetItem, TensorListStack, TensorListPushBack,
TensorListPopBack, TensorListLength, TensorListElementShape.

A list is a DT_VARIANT value: a :class:`TensorList` held in a 0-d object array. Lists are
immutable like every other value here: each op returns a new list (sharing the element
arrays, which are never mutated). Unset elements (TensorListReserve) read as zeros of the
element shape, as TensorFlow's kernels do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import as_int_tuple
from .registry import NodeInfo, OpDef, Shaped
from .shapes import DYNAMIC, one, require_values


@dataclass(frozen=True)
class TensorList:
    items: tuple[np.ndarray | None, ...]
    element_shape: tuple[int, ...] | None  # -1 for unknown dims; None: unknown rank
    element_dtype: np.dtype

    def item(self, index: int, shape_hint=None) -> np.ndarray:
        if not -len(self.items) <= index < len(self.items):
            raise ValueError(f"TensorList index {index} out of range for {len(self.items)} "
                             "elements")
        value = self.items[index]
        return value if value is not None else np.zeros(self._zero_shape(shape_hint),
                                                        self.element_dtype)

    def _zero_shape(self, hint) -> tuple[int, ...]:
        for shape in (self.element_shape, hint):
            if shape is not None and DYNAMIC not in shape:
                return tuple(shape)
        known = [x.shape for x in self.items if x is not None]
        if known:
            return known[0]
        raise ValueError("an unset TensorList element has no fully known shape")


def _wrap(tl: TensorList) -> np.ndarray:
    out = np.empty((), object)
    out[()] = tl
    return out


def _list(value) -> TensorList:
    tl = np.asarray(value, object).reshape(()).item() if isinstance(value, np.ndarray) else value
    if not isinstance(tl, TensorList):
        raise ValueError(f"expected a TensorList, got {type(tl).__name__}")
    return tl


def _element_shape(value) -> tuple[int, ...] | None:
    arr = np.asarray(value).reshape(-1)
    if np.asarray(value).ndim == 0 and arr.size == 1 and int(arr[0]) == -1:
        return None  # unknown rank
    return as_int_tuple(arr)


def _dtype(attrs) -> np.dtype:
    return np.dtype(attrs.get("element_dtype", np.float32))


def empty_tensor_list(attrs, element_shape, max_num_elements):
    return _wrap(TensorList((), _element_shape(element_shape), _dtype(attrs)))


def tensor_list_reserve(attrs, element_shape, num_elements):
    n = int(np.asarray(num_elements).reshape(()))
    if n < 0:
        raise ValueError(f"TensorListReserve: num_elements must be >= 0, got {n}")
    return _wrap(TensorList((None,) * n, _element_shape(element_shape), _dtype(attrs)))


def tensor_list_from_tensor(attrs, tensor, element_shape):
    return _wrap(TensorList(tuple(tensor[k] for k in range(tensor.shape[0])),
                            tuple(tensor.shape[1:]), tensor.dtype))


def tensor_list_get_item(attrs, handle, index, element_shape):
    return _list(handle).item(int(np.asarray(index).reshape(())), _element_shape(element_shape))


def tensor_list_set_item(attrs, handle, index, item):
    tl = _list(handle)
    k = int(np.asarray(index).reshape(()))
    items = list(tl.items)
    if not 0 <= k < len(items):
        if not attrs.get("resize_if_index_out_of_bounds", False) or k < 0:
            raise ValueError(f"TensorListSetItem index {k} out of range for {len(items)} "
                             "elements")
        items += [None] * (k + 1 - len(items))
    items[k] = item
    return _wrap(TensorList(tuple(items), tl.element_shape, tl.element_dtype))


def tensor_list_stack(attrs, handle, element_shape):
    tl = _list(handle)
    hint = _element_shape(element_shape)
    want = attrs.get("num_elements", -1)
    if want not in (-1, None) and want != len(tl.items):
        raise ValueError(f"TensorListStack expects {want} elements, the list has "
                         f"{len(tl.items)}")
    if not tl.items:
        shape = tl._zero_shape(hint)
        return np.zeros((0, *shape), tl.element_dtype)
    return np.stack([tl.item(k, hint) for k in range(len(tl.items))])


def tensor_list_push_back(attrs, handle, tensor):
    tl = _list(handle)
    return _wrap(TensorList((*tl.items, tensor), tl.element_shape, tl.element_dtype))


def tensor_list_pop_back(attrs, handle, element_shape):
    tl = _list(handle)
    if not tl.items:
        raise ValueError("TensorListPopBack on an empty list")
    last = tl.item(len(tl.items) - 1, _element_shape(element_shape))
    return _wrap(TensorList(tl.items[:-1], tl.element_shape, tl.element_dtype)), last


def tensor_list_length(attrs, handle):
    return np.array(len(_list(handle).items), np.int32)


def tensor_list_element_shape(attrs, handle):
    tl = _list(handle)
    dtype = np.dtype(attrs.get("shape_type", np.int32))
    if tl.element_shape is None:
        return np.array(-1, dtype)
    return np.array(tl.element_shape, dtype)


def add_lists(*handles) -> np.ndarray:
    """AddN of lists (gradients accumulate this way): element by element; an unset
    element adds nothing."""
    lists = [_list(h) for h in handles]
    n = len(lists[0].items)
    if any(len(tl.items) != n for tl in lists):
        raise ValueError("AddN of TensorLists of different lengths")
    items = []
    for k in range(n):
        parts = [tl.items[k] for tl in lists if tl.items[k] is not None]
        total = None
        for p in parts:
            total = np.array(p, copy=True) if total is None else total + p
        items.append(total)
    return _wrap(TensorList(tuple(items), lists[0].element_shape, lists[0].element_dtype))


def zeros_like_list(handle) -> np.ndarray:
    tl = _list(handle)
    return _wrap(TensorList(tuple(None if x is None else np.zeros_like(x) for x in tl.items),
                            tl.element_shape, tl.element_dtype))


def _scalar(info: NodeInfo):
    return one(())


def _stack_shape(info: NodeInfo):
    elem = require_values(info, 1, "element shape")
    n = info.attrs.get("num_elements", -1)
    return one((DYNAMIC if n in (-1, None) else n, *(DYNAMIC if d is None else d
                                                     for d in elem)))


def _item_shape(k: int):
    def rule(info: NodeInfo):
        elem = require_values(info, k, "element shape")
        return one(tuple(DYNAMIC if d is None else d for d in elem))
    return rule


def _element_shape_shape(info: NodeInfo):
    return one((DYNAMIC,))


def _variant(name: str, kernel, shape=_scalar, num_outputs: int = 1) -> OpDef:
    return OpDef(name, kernel, shape=shape, fresh_output=True, shape_inputs=(),
                 num_outputs=num_outputs)


OPS = [
    _variant("FlexEmptyTensorList", empty_tensor_list),
    _variant("FlexTensorListReserve", tensor_list_reserve),
    _variant("FlexTensorListFromTensor", tensor_list_from_tensor),
    _variant("FlexTensorListGetItem", tensor_list_get_item, _item_shape(2)),
    _variant("FlexTensorListSetItem", tensor_list_set_item),
    _variant("FlexTensorListStack", tensor_list_stack, _stack_shape),
    _variant("FlexTensorListPushBack", tensor_list_push_back),
    _variant("FlexTensorListPopBack", tensor_list_pop_back,
             lambda info: (Shaped(()), *_item_shape(1)(info)), num_outputs=2),
    _variant("FlexTensorListLength", tensor_list_length),
    _variant("FlexTensorListElementShape", tensor_list_element_shape, _element_shape_shape),
]

