"""Whatever a pyfunc returned -> V2 outputs named and typed as the output signature says."""

from __future__ import annotations

import base64
import datetime as _dt
import math
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import orjson
import pandas as pd
from mlflow.types.schema import DataType
from mlserver.types import Parameters, ResponseOutput

from ..errors import InvalidInput, OutputEncodingError
from ..signature import DEFAULT_OUTPUT_NAME, JSON_CONTENT_TYPE, V2_TO_NUMPY, FieldSpec, SchemaPlan, numpy_to_v2

__all__ = ["ResponseEncoder"]


class ResponseEncoder:
    """Encodes whatever pyfunc returned into V2 outputs named and typed as the output signature says."""

    def __init__(self, outputs: SchemaPlan):
        self.plan = outputs

    def encode(self, prediction: Any, requested: Optional[Iterable[str]] = None) -> list[ResponseOutput]:
        named = self._split(prediction)
        if requested is not None:
            wanted = list(requested)
            unknown = [n for n in wanted if n not in named]
            if unknown:
                raise InvalidInput(
                    f"unknown output{'s' if len(unknown) > 1 else ''} {unknown}; "
                    f"available outputs: {list(named)}"
                )
            named = {n: named[n] for n in wanted}
        return [self._encode_one(name, values) for name, values in named.items()]

    # -- splitting into named outputs ------------------------------------------------------------

    def _name_for(self, position: int, label: Any, total: int) -> str:
        fields = self.plan.fields
        if isinstance(label, str):
            return label
        if fields and total == len(fields):
            return fields[position].name
        if total == 1:
            return DEFAULT_OUTPUT_NAME
        return f"output-{position}"

    def _split(self, prediction: Any) -> dict[str, Any]:
        fields = self.plan.fields
        if isinstance(prediction, pd.DataFrame):
            cols = list(prediction.columns)
            return {
                self._name_for(i, c, len(cols)): prediction.iloc[:, i] for i, c in enumerate(cols)
            }
        if isinstance(prediction, pd.Series):
            label = prediction.name if isinstance(prediction.name, str) else None
            if len(fields) == 1:
                label = fields[0].name
            return {label or DEFAULT_OUTPUT_NAME: prediction}
        if isinstance(prediction, dict):
            return {str(k): v for k, v in prediction.items()}
        if isinstance(prediction, np.ndarray):
            column_fields = [f for f in fields if not f.is_tensor]
            if (
                len(fields) > 1
                and len(column_fields) == len(fields)
                and prediction.ndim == 2
                and prediction.shape[1] == len(fields)
            ):
                return {f.name: prediction[:, i] for i, f in enumerate(fields)}
            return {self._name_for(0, None, 1): prediction}
        if isinstance(prediction, (list, tuple)):
            if prediction and all(isinstance(r, dict) for r in prediction):
                keys: dict[str, None] = {}
                for r in prediction:
                    for k in r:
                        keys.setdefault(str(k), None)
                return {k: [r.get(k) for r in prediction] for k in keys}
            return {self._name_for(0, None, 1): list(prediction)}
        if isinstance(prediction, (str, bytes, int, float, bool, np.generic)):
            return {self._name_for(0, None, 1): [prediction]}
        raise OutputEncodingError(
            f"model returned {type(prediction).__name__}, which cannot be encoded as V2 outputs"
        )

    # -- one output ------------------------------------------------------------------------------

    def _encode_one(self, name: str, values: Any) -> ResponseOutput:
        spec = self.plan.by_name.get(name)
        try:
            datatype, content_type, shape, data = _encode_values(values, spec)
        except (ValueError, TypeError, OverflowError) as exc:
            expected = f" as {spec.type_label}" if spec is not None else ""
            raise OutputEncodingError(f"output '{name}' cannot be encoded{expected}: {exc}") from None
        return ResponseOutput(
            name=name,
            datatype=datatype,
            shape=shape,
            data=data,
            parameters=Parameters(content_type=content_type),
        )


def _as_array(values: Any) -> np.ndarray | pd.api.extensions.ExtensionArray:
    if type(values) is np.ndarray:  # what most models return: checked first, it is the hot path
        return values
    if isinstance(values, pd.Series):
        return values.array if isinstance(values.dtype, pd.api.extensions.ExtensionDtype) else values.to_numpy()
    if isinstance(values, np.ndarray):
        return values
    if isinstance(values, (list, tuple)):
        try:
            arr = np.asarray(values)
        except ValueError:  # ragged lists
            return _object_array(values)
        return arr
    return np.asarray([values])


def _object_array(values: Sequence[Any]) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr


def _to_bytes_list(values: Iterable[Any]) -> list:
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
            out.append(None)
        elif isinstance(v, bytes):
            out.append(v)
        else:
            out.append(str(v).encode("utf-8"))
    return out


def _iso(v: Any) -> Optional[bytes]:
    if v is None or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, np.datetime64):
        v = pd.Timestamp(v)
    if isinstance(v, (_dt.datetime, _dt.date)):
        return v.isoformat().encode("ascii")
    return str(v).encode("utf-8")


def _json_bytes(v: Any) -> bytes:
    return orjson.dumps(v, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC)


def _null_list(arr: Any, kind: str) -> list:
    """Values of a nullable pandas array as a Python list with ``None`` for missing."""
    return [None if v is pd.NA else (bool(v) if kind == "b" else int(v)) for v in arr]


def _first_misfit(arr: np.ndarray, target: np.dtype) -> Optional[Any]:
    """A value of ``arr`` that ``target`` cannot hold without changing it, else ``None``.

    Lossless means: an integer or boolean type gets only values it holds exactly (``5.0`` for a
    ``long`` is fine, ``5.48`` is not; NaN fits no integer; only 0 and 1 fit a boolean); a float type gets
    any number that does not overflow it (rounding to its precision is how floats work, and is not
    counted: a ``float`` output of a float64 model is the rule, not a fault).
    """
    kind, want = arr.dtype.kind, target.kind
    if arr.dtype == target or arr.size == 0:
        return None
    flat = arr.ravel()
    if want == "b":
        bad = ~np.isin(flat, (0, 1))
    elif want in "iu":
        if kind == "b":
            return None
        info = np.iinfo(target)
        if kind == "f":
            with np.errstate(invalid="ignore"):
                bad = ~np.isfinite(flat) | (np.floor(flat) != flat) | (flat < info.min) | (flat > info.max)
        else:
            bad = (flat < info.min) | (flat > info.max)
    elif want == "f" and kind == "f":
        with np.errstate(over="ignore"):
            bad = np.isfinite(flat) & ~np.isfinite(flat.astype(target))
    else:  # integers and booleans into a float type
        return None
    found = np.flatnonzero(bad)
    return flat[found[0]].item() if found.size else None


def _check_fits(arr: np.ndarray, target: np.dtype, spec: FieldSpec) -> None:
    """500 naming the output when the model's values do not fit the signature's type losslessly
    (the documented choice: never change an answer silently, on V2, gRPC and the typed API alike)."""
    bad = _first_misfit(arr, target)
    if bad is not None:
        raise OutputEncodingError(
            f"output '{spec.name}': the model returned {arr.dtype} values that the signature's "
            f"{spec.type_label} cannot hold without changing them (e.g. {bad!r}); fix the model's "
            f"output or its signature"
        )


def _encode_values(values: Any, spec: Optional[FieldSpec]) -> tuple[str, str, list[int], list]:
    """(datatype, content_type, shape, flat data) for one output."""
    arr = _as_array(values)
    t = spec.mlflow_type if spec is not None else None
    if type(arr) is not np.ndarray and isinstance(arr, pd.api.extensions.ExtensionArray):
        dtype = arr.dtype
        n = len(arr)
        if isinstance(dtype, pd.DatetimeTZDtype) or t is DataType.datetime:
            return "BYTES", "datetime", [n], [_iso(v) for v in arr]
        if dtype.kind in "iub" and not isinstance(dtype, pd.StringDtype):
            if not arr.isna().any():
                return _encode_values(arr.to_numpy(dtype=dtype.numpy_dtype), spec)
            if spec is not None and spec.datatype in V2_TO_NUMPY:
                present = arr[~arr.isna()].to_numpy(dtype=dtype.numpy_dtype)
                _check_fits(present, V2_TO_NUMPY[spec.datatype], spec)
            target = spec.datatype if spec is not None else numpy_to_v2(dtype.numpy_dtype)
            return target, "np", [n], _null_list(arr, dtype.kind if spec is None else V2_TO_NUMPY[target].kind)
        if dtype.kind == "f":
            return _encode_values(arr.to_numpy(dtype=dtype.numpy_dtype, na_value=np.nan), spec)
        # pandas' string dtype (default for text in pandas 3), categoricals, ...
        arr = arr.to_numpy(dtype=object, na_value=None)
    # Column outputs are 1-D: a (n, 1) prediction for a column spec is flattened.
    if spec is not None and not spec.is_tensor and arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    shape = list(arr.shape)
    kind = arr.dtype.kind
    if spec is not None:
        if t is DataType.datetime or kind == "M":
            return "BYTES", "datetime", shape, [_iso(v) for v in arr.ravel()]
        if t is DataType.binary:
            return "BYTES", "base64", shape, [
                None if v is None else base64.b64encode(v if isinstance(v, bytes) else str(v).encode())
                for v in arr.ravel()
            ]
        if spec.is_composite:
            return "BYTES", JSON_CONTENT_TYPE, shape, [_json_bytes(v) for v in arr.ravel()]
        if spec.datatype == "BYTES":
            return "BYTES", "str", shape, _to_bytes_list(arr.ravel())
        target = V2_TO_NUMPY[spec.datatype]
        if kind not in "biuf":
            raise OutputEncodingError(
                f"output '{spec.name}': model returned {arr.dtype} values, signature says {spec.type_label}"
            )
        _check_fits(arr, target, spec)
        return spec.datatype, "np", shape, arr.astype(target, copy=False).ravel().tolist()
    # No signature for this output: go by what the model returned.
    if kind in "biuf":
        return numpy_to_v2(arr.dtype), "np", shape, arr.ravel().tolist()
    if kind == "M":
        return "BYTES", "datetime", shape, [_iso(v) for v in arr.ravel()]
    if kind in "US":
        return "BYTES", "str", shape, _to_bytes_list(arr.ravel().tolist())
    flat = arr.ravel().tolist() if arr.ndim else [arr.item()]
    present = [v for v in flat if v is not None]
    if present and all(isinstance(v, (bytes, bytearray)) for v in present):
        return "BYTES", "base64", shape, [None if v is None else base64.b64encode(v) for v in flat]
    if present and all(isinstance(v, (_dt.datetime, _dt.date, np.datetime64)) for v in present):
        return "BYTES", "datetime", shape, [_iso(v) for v in flat]
    if present and all(isinstance(v, str) for v in present):
        return "BYTES", "str", shape, _to_bytes_list(flat)
    if present and all(isinstance(v, (bool, np.bool_)) for v in present):
        return "BOOL", "np", shape, flat
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        if all(isinstance(v, int) for v in present):
            return "INT64", "np", shape, flat
        return "FP64", "np", shape, [math.nan if v is None else v for v in flat]
    return "BYTES", JSON_CONTENT_TYPE, shape, [_json_bytes(v) for v in flat]

