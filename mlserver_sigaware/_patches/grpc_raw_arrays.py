"""gRPC ``raw_input_contents`` reach our models as arrays, not as lists of Python numbers.

``tritonclient.grpc`` sends every tensor as raw little-endian bytes (``raw_input_contents``). MLServer 1.7.1
unpacks each with ``struct`` into a list of Python numbers (``mlserver/raw.py``): 130,000 float objects for a
10,000-row request of 13 columns, then pickled to the inference worker and unpickled there, before our
decoder turns them back into one array. For this runtime's models, each fixed-size tensor becomes
``np.frombuffer`` of its bytes instead (an ndarray that stands for exactly that list: the decoder treats it
so, ``tests/codec/test_array_data.py``); ``BYTES`` tensors stay MLServer's lists of ``bytes``. The buffers
are checked first, as for every model (:mod:`.grpc_raw_contents`). Models with adaptive batching or the
response cache (which handle lists only), other runtimes, and ``MLSERVER_SIGAWARE_FAST_V2=false`` keep
MLServer's lists.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import numpy as np

from ..settings import server_settings
from .binary_tensors import NUMPY_DTYPES
from .grpc_raw_contents import check_raw_contents
from .v2_infer import is_ours, lists_only

__all__ = ["apply"]

#: Set while MLServer converts a request to one of our models (``InferenceServicer._InsertHeaders``).
_AS_ARRAYS: ContextVar[bool] = ContextVar("sigaware_grpc_raw_arrays", default=False)
_MARK = "_sigaware_raw_arrays"


def _takes_arrays(data_plane: Any, request: Any) -> bool:
    from mlserver.errors import MLServerError

    if not request.raw_input_contents or not server_settings().fast_v2:
        return False
    version = request.model_version or None
    try:
        model = data_plane._model_registry._get_model_registry(request.model_name, version)._find_model(version)
    except MLServerError:
        return False  # MLServer answers (NOT_FOUND)
    return model is not None and is_ours(model) and not lists_only(model, data_plane)


def apply() -> None:
    from mlserver import raw
    from mlserver.grpc import converters, servicers
    from mlserver.types import TensorData

    if getattr(servicers.InferenceServicer, _MARK, False):
        return
    checked_inject = converters.inject_raw  # MLServer's, behind our checks (grpc_raw_contents)
    original_insert = servicers.InferenceServicer._InsertHeaders

    def inject_raw(elems: list[Any], raw_contents: list[bytes]) -> list[Any]:
        if not _AS_ARRAYS.get():
            return checked_inject(elems, raw_contents)
        check_raw_contents(elems, list(raw_contents))
        buffers = iter(raw_contents)
        for elem in elems:
            if elem.data:
                continue
            buffer = next(buffers)
            datatype = str(getattr(elem.datatype, "value", elem.datatype))
            dtype = NUMPY_DTYPES.get(datatype)
            values = raw.unpack(elem, buffer) if dtype is None else np.frombuffer(buffer, dtype=dtype)
            elem.data = TensorData.model_construct(values)
        return elems

    def _InsertHeaders(self: Any, request: Any, context: Any) -> Any:
        token = _AS_ARRAYS.set(_takes_arrays(self._data_plane, request))
        try:
            return original_insert(self, request, context)
        finally:
            _AS_ARRAYS.reset(token)

    converters.inject_raw = inject_raw
    servicers.InferenceServicer._InsertHeaders = _InsertHeaders  # type: ignore[method-assign]
    setattr(servicers.InferenceServicer, _MARK, True)
