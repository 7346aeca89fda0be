"""The one signature codec: V2 tensors <-> the containers an MLflow pyfunc expects.

Every protocol (V2 REST and gRPC, ``/invocations``, the typed API) turns its payload into V2 inputs and
decodes them here, so one set of rules and one set of error messages decides what a model receives.

* :mod:`.values`: one input's values -> a typed column or tensor (every per-type rule and its 400);
* :mod:`.frames`: DataFrames over one block of numbers, without pandas' per-call re-checks;
* :mod:`.decode`: :class:`RequestDecoder`, the request -> DataFrame / ndarray / dict of ndarrays;
* :mod:`.params`: params against the params schema;
* :mod:`.encode`: :class:`ResponseEncoder`, predictions -> V2 outputs by the output signature.
"""

from .decode import RequestDecoder
from .encode import ResponseEncoder
from .params import RESERVED_PARAMETERS, validate_json_params, validate_params
from .values import decode_column

__all__ = [
    "RESERVED_PARAMETERS",
    "RequestDecoder",
    "ResponseEncoder",
    "decode_column",
    "validate_json_params",
    "validate_params",
]
