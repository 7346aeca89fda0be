"""The V2 (Open Inference Protocol) adapter: one inference request answered by one served version.

MLServer owns V2's transport (REST ``/v2/models/<name>/infer``, gRPC ``ModelInfer``, adaptive
batching) and hands the runtime an :class:`InferenceRequest`; this module is what happens next:
the signature codec decodes it, the predictor runs the model, the codec encodes the outputs.
"""

from __future__ import annotations

import logging
from typing import Optional

from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse, Parameters

from .. import metrics
from ..errors import ModelFailure
from ..model.served import ServedModel
from .._patches.v2_infer import ARRAYS_MARK
from .http import VERSION_HEADER

__all__ = ["infer"]

logger = logging.getLogger("mlserver.sigaware")


def infer(model_name: str, served: ServedModel, payload: InferenceRequest) -> InferenceResponse:
    """Decode ``payload`` by ``served``'s signature, predict, encode by its output signature.

    A request that came through our V2 REST route (marked by it: ``ARRAYS_MARK``) gets its numeric
    outputs as ndarrays, which that route writes without a list (and which cross the inference
    worker's pipe as one buffer each); every other transport gets lists, as MLServer expects.
    """
    try:
        data, params = served.decoder.decode(payload)
        prediction = served.predictor(data, params, enforce=served.needs_enforcement(payload))
        requested: Optional[list[str]] = [o.name for o in payload.outputs] if payload.outputs else None
        headers = payload.parameters.headers if payload.parameters is not None else None
        arrays = bool(headers) and headers.get(ARRAYS_MARK) is True
        outputs = served.encoder.encode(prediction, requested, arrays=arrays)
    except MLServerError:
        raise
    except Exception as exc:  # a bug of ours must still be a clean 500, never a traceback
        logger.exception("unexpected error while serving '%s'", model_name)
        raise ModelFailure(f"internal error: {type(exc).__name__}: {exc}") from None
    version = served.version
    if version:
        metrics.requests().labels(model_name, version).inc()
    return InferenceResponse(
        model_name=model_name,
        model_version=version,
        outputs=outputs,
        parameters=Parameters(headers={VERSION_HEADER: version}) if version else None,
    )
