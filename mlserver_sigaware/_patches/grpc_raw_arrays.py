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

Such a request is converted by :func:`to_types` instead of MLServer's converter, without its per-input
detours (its deprecated pydantic ``construct``, which warns on every call, and a validation of each empty
``TensorData``): the very objects MLServer builds (a property test compares them). They are marked for arrays out as well
(``ARRAYS_MARK``, as our REST route marks its requests), so a large numeric output comes back as one
ndarray and goes into ``raw_output_contents`` with one ``tobytes`` instead of ``struct.pack`` over a
list; the response message is the same, byte for byte (``tests/test_patches.py``).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..settings import server_settings
from .binary_tensors import NUMPY_DTYPES, tensor_bytes
from .grpc_raw_contents import check_raw_contents
from .v2_infer import ARRAYS_MARK, is_ours, lists_only

__all__ = ["apply", "to_types"]

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
    from mlserver.grpc import servicers
    from mlserver.grpc.utils import to_headers
    from mlserver.utils import insert_headers

    if getattr(servicers.InferenceServicer, _MARK, False):
        return
    original_insert = servicers.InferenceServicer._InsertHeaders

    def _InsertHeaders(self: Any, request: Any, context: Any) -> Any:
        if not _takes_arrays(self._data_plane, request):
            return original_insert(self, request, context)
        payload = to_types(request)
        insert_headers(payload, to_headers(context))
        payload.parameters.headers[ARRAYS_MARK] = True
        return payload

    servicers.InferenceServicer._InsertHeaders = _InsertHeaders  # type: ignore[method-assign]
    servicers.ModelInferResponseConverter = _response_converter(servicers.ModelInferResponseConverter)
    setattr(servicers.InferenceServicer, _MARK, True)


def _inject_arrays(elems: list[Any], raw_contents: Any) -> None:
    """Each input without ``contents`` gets its buffer as ``np.frombuffer`` (``BYTES``: MLServer's list),
    after the checks every model's raw contents get (:func:`.grpc_raw_contents.check_raw_contents`)."""
    from mlserver import raw

    check_raw_contents(elems, list(raw_contents))
    new_data = _builders()["data"]
    buffers = iter(raw_contents)
    for elem in elems:
        if elem.data:
            continue
        buffer = next(buffers)
        datatype = str(getattr(elem.datatype, "value", elem.datatype))
        dtype = NUMPY_DTYPES.get(datatype)
        values = raw.unpack(elem, buffer) if dtype is None else np.frombuffer(buffer, dtype=dtype)
        elem.data = new_data({"root": values})


def _constructor(cls: type, sample: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
    """``cls.model_construct(**values)`` for ``values`` naming every field, in four slot writes.

    pydantic's ``model_construct`` (~5 µs) walks the fields for defaults, aliases and extras; a V2 request
    of 13 inputs makes 26 such objects. ``values`` here names every field and the classes have no extras
    and no private attributes, so the object is its ``__dict__`` and fields set. The result is compared
    with ``model_construct``'s on ``sample`` once, at first use; where pydantic builds something else, its
    own ``model_construct`` is used."""
    new = cls.__new__
    write = object.__setattr__
    root = getattr(cls, "__pydantic_root_model__", False)  # pydantic leaves a root model's extras unset

    def construct(values: dict[str, Any]) -> Any:
        obj = new(cls)
        write(obj, "__dict__", values)
        write(obj, "__pydantic_fields_set__", set(values))
        if not root:
            write(obj, "__pydantic_extra__", None)
            write(obj, "__pydantic_private__", None)
        return obj

    def slots(obj: Any) -> tuple:
        return tuple(getattr(obj, name, "<unset>") for name in cls.__slots__ if name != "__dict__") + (
            obj.__dict__,
            type(obj),
        )

    try:
        same = slots(construct(dict(sample))) == slots(cls.model_construct(**sample)) and set(sample) == set(
            cls.model_fields
        )
    except Exception:  # pragma: no cover - another pydantic
        same = False
    return construct if same else (lambda values: cls.model_construct(**values))


_BUILDERS: dict[str, Callable[[dict[str, Any]], Any]] = {}


def _builders() -> dict[str, Callable[[dict[str, Any]], Any]]:
    if not _BUILDERS:
        from mlserver.types import RequestInput, TensorData

        _BUILDERS["input"] = _constructor(
            RequestInput, {"name": "x", "shape": [1], "datatype": "FP64", "parameters": None, "data": [1.0]}
        )
        _BUILDERS["data"] = _constructor(TensorData, {"root": [1.0]})
    return _BUILDERS


def to_types(request: Any) -> Any:
    """MLServer's ``ModelInferRequestConverter.to_types``, the same objects without its detours (see the
    module docstring), fixed-size raw contents as arrays."""
    from mlserver.grpc import converters
    from mlserver.types import InferenceRequest, RequestOutput, TensorData

    builders = _builders()
    new_input, new_data = builders["input"], builders["data"]
    to_parameters = converters.ParametersConverter.to_types
    inputs = []
    for tensor in request.inputs:
        contents = converters._get_value(tensor.contents, default=[])
        inputs.append(
            new_input(
                {
                    "name": tensor.name,
                    "shape": list(tensor.shape),
                    "datatype": tensor.datatype,
                    "parameters": to_parameters(tensor.parameters) if tensor.parameters else None,
                    "data": TensorData(root=list(contents)) if contents else new_data({"root": []}),
                }
            )
        )
    payload = InferenceRequest.model_construct(id=request.id, parameters=to_parameters(request.parameters), inputs=inputs)
    if request.outputs:
        payload.outputs = [
            RequestOutput.model_construct(name=out.name, parameters=to_parameters(out.parameters))
            for out in request.outputs
        ]
    if request.raw_input_contents:
        _inject_arrays(payload.inputs, request.raw_input_contents)
    return payload


def _response_converter(original: type) -> type:
    """MLServer's ``ModelInferResponseConverter``, taking outputs whose data is an ndarray as well."""
    from mlserver import raw
    from mlserver.types import TensorData

    class ModelInferResponseConverter(original):  # type: ignore[misc, valid-type]
        @classmethod
        def from_types(cls, type_object: Any, use_raw: bool = False) -> Any:
            outputs = type_object.outputs
            if not any(isinstance(out.data.root, np.ndarray) for out in outputs):
                return original.from_types(type_object, use_raw=use_raw)
            if not use_raw:
                for out in outputs:
                    if isinstance(out.data.root, np.ndarray):
                        out.data.root = out.data.root.tolist()
                return original.from_types(type_object, use_raw=False)
            contents = []
            for out in outputs:
                data = out.data.root
                packed = None
                if isinstance(data, np.ndarray):
                    packed = tensor_bytes(str(getattr(out.datatype, "value", out.datatype)), data)
                    if packed is None:
                        out.data.root = data.tolist()
                contents.append(raw.pack(out) if packed is None else packed)
                out.data = TensorData.model_construct([])
            response = original.from_types(type_object, use_raw=False)
            response.raw_output_contents.extend(contents)
            return response

    return ModelInferResponseConverter
