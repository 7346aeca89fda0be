"""One loaded model version with everything computed once at load: codec plans, metadata, predictor.

The runtime holds one of these (and issue #4's version cache holds several); keeping all per-version
state in one immutable object is what lets a version be swapped atomically.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field
from typing import Any, Optional

from mlflow.models.signature import ModelSignature
from mlflow.types.schema import ParamSchema, Schema
from mlserver.types import InferenceRequest, MetadataModelResponse, MetadataTensor, Parameters

from ..codec import RequestDecoder, ResponseEncoder
from .device import model_device
from .predictor import Predictor
from .location import ResolvedModel
from .registry import RegistryClient
from ..settings import SigawareSettings
from ..signature import (
    Layout,
    SchemaPlan,
    metadata_tensors,
    params_metadata,
    plan_inputs,
    plan_outputs,
    signature_parts,
)

logger = logging.getLogger("mlserver.sigaware")

_MODEL_CONTENT_TYPE = {Layout.COLUMNS: "pd", Layout.TENSOR: "np", Layout.TENSORS: "dict"}


@dataclass
class ServedModel:
    resolved: ResolvedModel
    predictor: Predictor
    input_schema: Optional[Schema]
    output_schema: Optional[Schema]
    params_schema: Optional[ParamSchema]
    inputs: SchemaPlan
    outputs: SchemaPlan
    decoder: RequestDecoder
    #: The decoder of ``/invocations`` payloads: extra columns ignored whatever ``unknown_inputs``
    #: says, and nulls in required columns passed on, as MLflow's scoring server does.
    invocations_decoder: RequestDecoder
    encoder: ResponseEncoder
    always_enforce: bool
    signature: Optional[ModelSignature] = None
    input_metadata: Optional[list[MetadataTensor]] = field(default=None)
    output_metadata: Optional[list[MetadataTensor]] = field(default=None)
    #: Where the model's weights are (``cpu``, ``cuda:0``) for torch-based flavors, else ``None``.
    device: Optional[str] = None

    @property
    def version(self) -> Optional[str]:
        return self.resolved.version

    #: Releases this version's artifact folder: run by :meth:`close`, or when the object is garbage
    #: collected (evicted or replaced, and the last request holding it finished).
    _release: Optional[weakref.finalize] = field(default=None, repr=False, compare=False)

    @classmethod
    def load(cls, client: RegistryClient, resolved: ResolvedModel, cfg: SigawareSettings) -> "ServedModel":
        pyfunc, lease = client.load(resolved)
        try:
            served = cls.from_pyfunc(pyfunc, resolved, cfg)
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        if lease is not None:
            served._release = weakref.finalize(served, lease.release)
        return served

    def close(self) -> None:
        """Release the artifact folder now (a version nobody will use: refused by the guard)."""
        if self._release is not None:
            self._release()

    @classmethod
    def from_pyfunc(cls, pyfunc: Any, resolved: ResolvedModel, cfg: SigawareSettings) -> "ServedModel":
        meta = pyfunc.metadata
        signature = meta.signature
        if signature is None:
            logger.warning(
                "model %s has no signature: inputs are decoded by their own datatypes and "
                "content types, and metadata lists no inputs or outputs",
                resolved.ref.describe,
            )
        input_schema, output_schema, params_schema = signature_parts(signature)
        inputs = plan_inputs(input_schema)
        outputs = plan_outputs(output_schema)
        # Composite types (Array/Object/Map/Any) are converted by MLflow in ways models rely on:
        # keep MLflow's enforcement for them rather than re-implementing it.
        always_enforce = cfg.enforce_schema_in_mlflow or any(f.is_composite for f in inputs.fields)
        decoder = RequestDecoder(inputs, params_schema, cfg.unknown_inputs)
        float_columns = (
            decoder.uniform_columns if cfg.sklearn_array_input and decoder.uniform_target is not None else None
        )
        return cls(
            resolved=resolved,
            predictor=Predictor(pyfunc, float_columns),
            input_schema=input_schema,
            output_schema=output_schema,
            params_schema=params_schema,
            inputs=inputs,
            outputs=outputs,
            decoder=decoder,
            invocations_decoder=RequestDecoder(inputs, params_schema, unknown_inputs="ignore", refuse_nulls=False),
            encoder=ResponseEncoder(outputs),
            always_enforce=always_enforce,
            signature=signature,
            input_metadata=metadata_tensors(inputs),
            output_metadata=metadata_tensors(outputs),
            device=model_device(pyfunc),
        )

    def needs_enforcement(self, request: InferenceRequest) -> bool:
        """MLflow's enforcement runs when our decoder could not guarantee the signature's container."""
        if self.always_enforce:
            return True
        forced = request.parameters is not None and request.parameters.content_type
        return bool(forced) and self.inputs.layout is not Layout.ANY

    def metadata(self, name: str, extra: Optional[dict[str, Any]] = None) -> MetadataModelResponse:
        params: dict[str, Any] = {"mlflow_source": self.resolved.ref.describe}
        ct = _MODEL_CONTENT_TYPE.get(self.inputs.layout)
        if ct:
            params["content_type"] = ct
        if self.params_schema is not None:
            params["params"] = params_metadata(self.params_schema)
        if self.resolved.run_id:
            params["mlflow_run_id"] = self.resolved.run_id
        if self.device is not None:
            params["device"] = self.device
        if extra:
            params.update(extra)
        return MetadataModelResponse(
            name=name,
            versions=[self.version] if self.version else [],
            platform="mlflow",
            inputs=self.input_metadata,
            outputs=self.output_metadata,
            parameters=Parameters(**params),
        )
