"""V2 requests -> the container an MLflow pyfunc expects (DataFrame, ndarray, dict), by the signature.

We do not use MLServer's PandasCodec/StringCodec here: they ignore the signature (every column must carry
its own content type), turn strings into bytes, wrap values in tuples, and crash on pandas 3's string
dtype (``KeyError: 'O'``). Decoding by the signature also lets us name the offending input in every error.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
from mlflow.types.schema import DataType, ParamSchema
from mlserver.types import InferenceRequest, Parameters, RequestInput

from ..errors import InvalidInput
from ..signature import FieldSpec, Layout, SchemaPlan
from .frames import frame_from_block, uniform_float_target
from .params import RESERVED_PARAMETERS, v2_param_values, validate_params
from .values import (
    FLOATABLE_DATATYPES,
    NUMERIC_KINDS,
    PLAIN_NUMBERS,
    checked_values,
    datatype_of,
    decode_column,
    decode_tensor,
    plain_floats,
    takes_array,
)

__all__ = ["RequestDecoder", "first_null", "null_message"]


def first_null(column: Any) -> Optional[int]:
    """Row of the first missing value (``None``, NaN, ``pd.NA``, ``NaT``) of a decoded column, else ``None``.

    MLflow's rule for what a required column is: one whose training data had no missing value
    (``infer_signature`` marks a column with any null or NaN ``required=False``; Spark reads a
    required column as ``nullable=False``). A NaN in a float column counts, as it does for MLflow.
    """
    if isinstance(column, np.ndarray):
        if column.dtype.kind == "f":
            found = np.flatnonzero(np.isnan(column))
            return int(found[0]) if found.size else None
        if column.dtype.kind != "O":
            return None
        column = column.tolist()
    if isinstance(column, list):  # text, binary, composite values: only None is missing (C-speed check)
        try:
            return column.index(None) if None in column else None
        except ValueError:  # elements whose == is elementwise (arrays): look one by one
            return next((i for i, value in enumerate(column) if value is None), None)
    missing = np.asarray(pd.isna(column))
    found = np.flatnonzero(missing)
    return int(found[0]) if found.size else None


def null_message(spec: FieldSpec, row: int) -> str:
    """The 400 for a null in a required column: where it is, and how a model accepts one."""
    return (
        f"input '{spec.name}': null at row {row}, but '{spec.name}' is a required {spec.type_label} "
        f"column; send a value, or mark the column optional in the model's signature "
        f"(required=False) to accept missing values"
    )

#: Up to this many values (rows x columns), :meth:`RequestDecoder._uniform_frame` joins the columns'
#: lists and converts them at once; above, it converts each column into its row of the block.
_SMALL_REQUEST_VALUES = 4096


class RequestDecoder:
    """Decodes V2 requests for one model; built once at load time from the signature."""

    def __init__(
        self,
        inputs: SchemaPlan,
        params_schema: Optional[ParamSchema] = None,
        unknown_inputs: str = "error",
        refuse_nulls: bool = True,
    ):
        self.plan = inputs
        self.params_schema = params_schema
        self.unknown_inputs = unknown_inputs
        #: Whether a null (or NaN) in a required column is a 400 (V2, gRPC, the typed API), or passed on
        #: as MLflow's scoring server passes it (``/invocations``). See :func:`first_null`.
        self.refuse_nulls = refuse_nulls
        self._param_specs = {p.name: p for p in params_schema.params} if params_schema else {}
        self._index_cache: dict[tuple[str, ...], pd.Index] = {}
        #: The one float dtype of an all-float signature (the common tabular case), else ``None``.
        self.uniform_target = uniform_float_target(inputs)
        #: That signature's input names, in its order.
        self.uniform_names = tuple(f.name for f in inputs.fields)
        #: Their column labels in the model's DataFrame (positions for unnamed columns, as MLflow).
        self.uniform_columns = tuple(f.column for f in inputs.fields)
        self._uniform_columns = pd.Index(self.uniform_columns, dtype=object)
        #: Rows of the uniform block (columns, in signature order) that may not hold a NaN.
        self._uniform_required = np.array(
            [i for i, f in enumerate(inputs.fields) if f.required and not f.is_tensor], dtype=np.intp
        )

    # The request-level `parameters.content_type` a client may send to force a container.
    _FORCED = {"pd": Layout.COLUMNS, "np": Layout.TENSOR, "dict": Layout.TENSORS}

    def decode(self, request: InferenceRequest) -> tuple[Any, Optional[dict[str, Any]]]:
        params = self.decode_params(request.parameters)
        return self.decode_inputs(request), params

    def decode_inputs(self, request: InferenceRequest) -> Any:
        inputs = request.inputs
        if not inputs:
            raise InvalidInput("request has no inputs")
        seen: dict[str, RequestInput] = {}
        for inp in inputs:
            if inp.name in seen:
                raise InvalidInput(f"input '{inp.name}' is given more than once")
            if inp.shape and inp.shape[0] == 0:
                # One rule for every flavor (docs/flavors.md): MLflow's enforcement refuses empty
                # input, and a flavor handed zero rows fails or answers without its outputs.
                raise InvalidInput(
                    f"input '{inp.name}' has no rows (shape {list(inp.shape)}): a request needs at least one"
                )
            seen[inp.name] = inp
        forced = None
        if request.parameters is not None and request.parameters.content_type:
            ct = request.parameters.content_type
            forced = self._FORCED.get(ct)
            if forced is None:
                raise InvalidInput(
                    f"parameters.content_type '{ct}' is not supported; use 'pd', 'np' or 'dict'"
                )
        layout = forced or self.plan.layout
        if layout is Layout.ANY:
            only = inputs[0]
            layout = Layout.TENSOR if len(inputs) == 1 and len(only.shape) > 1 else Layout.COLUMNS
        if layout is Layout.COLUMNS:
            return self._dataframe(seen)
        if layout is Layout.TENSOR:
            return self._single_tensor(inputs)
        return self._tensor_dict(seen)

    # -- containers ------------------------------------------------------------------------------

    def _match(self, seen: dict[str, RequestInput]) -> list[tuple[RequestInput, Optional[FieldSpec]]]:
        """Pair request inputs with fields; 400 on a missing required or (by default) unknown input."""
        plan = self.plan
        if plan.layout is Layout.ANY:
            return [(inp, None) for inp in seen.values()]
        missing = [f for f in plan.fields if f.required and f.name not in seen]
        if missing and len(plan.fields) == 1 and len(seen) == 1 and not plan.fields[0].named:
            # A single unnamed input matches whatever name the client gave it.
            only = next(iter(seen.values()))
            return [(only, plan.fields[0])]
        if missing:
            desc = ", ".join(f"'{f.name}' ({f.type_label})" for f in missing)
            raise InvalidInput(
                f"missing required input{'s' if len(missing) > 1 else ''} {desc}; "
                f"expected inputs: {[f.name for f in plan.fields]}"
            )
        pairs = []
        unknown = []
        for name, inp in seen.items():
            spec = plan.by_name.get(name)
            if spec is None:
                unknown.append(name)
            else:
                pairs.append((inp, spec))
        if unknown and self.unknown_inputs == "error":
            raise InvalidInput(
                f"unknown input{'s' if len(unknown) > 1 else ''} {unknown}; "
                f"expected inputs: {[f.name for f in plan.fields]}"
            )
        order = {f.name: i for i, f in enumerate(plan.fields)}
        pairs.sort(key=lambda p: order[p[1].name])
        return pairs

    def _dataframe(self, seen: dict[str, RequestInput]) -> pd.DataFrame:
        if self.uniform_target is not None:
            frame = self._uniform_frame(seen, self.uniform_target)
            if frame is not None:
                return frame
        columns: dict[str, Any] = {}
        rows: Optional[int] = None
        first = ""
        for inp, spec in self._match(seen):
            composite = spec is not None and spec.is_composite
            values = checked_values(inp, keep_array=not composite and takes_array(spec))
            shape = inp.shape
            n = shape[0] if shape else 1
            if len(shape) > 1 and math.prod(shape[1:]) != 1:
                if composite and datatype_of(inp) != "BYTES":
                    width = math.prod(shape[1:])
                    values = [values[i * width : (i + 1) * width] for i in range(n)]
                else:
                    raise InvalidInput(
                        f"input '{inp.name}': a column needs shape [n] or [n, 1], got {shape}"
                    )
            if rows is None:
                rows, first = n, inp.name
            elif n != rows:
                raise InvalidInput(
                    f"input '{inp.name}' has {n} rows but input '{first}' has {rows}"
                )
            column_name = spec.column if spec is not None else inp.name
            col = decode_column(inp, spec, values)
            if self.refuse_nulls and spec is not None and spec.required and not spec.is_tensor:
                row = first_null(col)
                if row is not None:
                    raise InvalidInput(null_message(spec, row))
            if isinstance(col, list) and (composite or (spec is not None and spec.mlflow_type is DataType.binary)):
                col = pd.Series(col, dtype=object)
            columns[column_name] = col
        return self._frame(columns)

    def _uniform_frame(self, seen: dict[str, RequestInput], target: np.dtype) -> Optional[pd.DataFrame]:
        """The DataFrame of a well-formed request to an all-float signature, or ``None``.

        The common tabular case (one row of a dozen ``double`` columns) pays ~15 µs of generic checks
        per column on the general path, more than a small model's own work. Here a small request's
        columns are joined and converted by one ``np.asarray``, whose ``(columns, rows)`` result is
        already the block pandas stores. A large request (more than 4,096 values, where the joined
        list would be one more copy of the payload) of float datatypes has each column written
        straight into its row of that block (:func:`plain_floats`): the values are copied once on
        their way to the model, where the general path holds them twice (columns, then the block).
        Anything unusual (a missing, unknown or null value, a string, a boolean, a nested or
        mismatched shape) returns ``None`` and takes the general path, which owns every error
        message, so both paths accept and refuse exactly the same requests (property-tested).
        """
        names = self.uniform_names
        width = len(names)
        if len(seen) != width:
            return None
        if any(isinstance(inp.data.root, np.ndarray) for inp in seen.values()):
            return self._array_uniform_frame(seen)
        columns: list[list] = []
        rows = -1
        for name in names:
            inp = seen.get(name)
            if inp is None:
                return None
            values = inp.data.root
            if type(values) is not list:
                return None
            if rows < 0:
                rows = len(values)
                if rows == 0:
                    return None
            shape = inp.shape
            if (
                len(values) != rows
                or not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1))
                or shape[0] != rows
                or inp.datatype not in FLOATABLE_DATATYPES
            ):
                return None
            columns.append(values)
        if rows * width > _SMALL_REQUEST_VALUES:
            return self._large_uniform_frame(seen, columns, rows)
        flat: list = []
        for values in columns:
            flat += values
        # Exactly the Python types the general path turns into numbers without comment (no bool,
        # which numpy would silently make 1.0 next to floats, no None, no str).
        if not set(map(type, flat)) <= PLAIN_NUMBERS:
            return None
        try:
            block = np.asarray(flat)
        except (ValueError, TypeError, OverflowError):
            return None
        if block.dtype.kind not in NUMERIC_KINDS:  # e.g. an int beyond 64 bits: object
            return None
        block = block.reshape(width, rows)
        # (no NaN in the values, the common case, seen without numpy: x != x only for NaN)
        if any(v != v for v in flat) and self._has_refused_nan(block):
            return None
        return self.uniform_frame(block)

    def _large_uniform_frame(
        self, seen: dict[str, RequestInput], columns: list[list], rows: int
    ) -> Optional[pd.DataFrame]:
        """A large request's block, each column converted straight into its row (see above)."""
        if not all(datatype_of(seen[name]).startswith("FP") for name in self.uniform_names):
            return None  # integer datatypes: the general path's range and type checks apply
        block = np.empty((len(columns), rows), dtype=np.float64)
        for row, values in zip(block, columns):
            if plain_floats(values, out=row) is None:
                return None
        if self._has_refused_nan(block):
            return None
        return self.uniform_frame(block)

    def _array_uniform_frame(self, seen: dict[str, RequestInput]) -> Optional[pd.DataFrame]:
        """The block of a request whose columns are float ndarrays (binary tensors, large JSON bodies:
        each stands for its ``tolist()``), each copied into its row; anything else: ``None``."""
        rows = -1
        arrays = []
        for name in self.uniform_names:
            inp = seen.get(name)
            if inp is None:
                return None
            values = inp.data.root
            shape = inp.shape
            if (
                not isinstance(values, np.ndarray)
                or values.ndim != 1
                or values.dtype.kind != "f"
                or not datatype_of(inp).startswith("FP")
                or not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1))
            ):
                return None
            if rows < 0:
                rows = len(values)
                if rows == 0:
                    return None
            if len(values) != rows or shape[0] != rows:
                return None
            arrays.append(values)
        block = np.empty((len(arrays), rows), dtype=np.float64)
        for row, values in zip(block, arrays):
            row[...] = values
        if self._has_refused_nan(block):
            return None
        return self.uniform_frame(block)

    def _has_refused_nan(self, block: np.ndarray) -> bool:
        """Whether a required column of the uniform block holds a NaN (the general path names it)."""
        if not self.refuse_nulls or not self._uniform_required.size or block.dtype.kind != "f":
            return False
        rows = block if self._uniform_required.size == len(block) else block[self._uniform_required]
        # A sum is NaN when a value is (or inf meets -inf): one pass, no boolean array, then exact.
        return bool(np.isnan(rows.sum())) and bool(np.isnan(rows).any())

    def uniform_frame(self, block: np.ndarray) -> pd.DataFrame:
        """The model's DataFrame over ``block``: numbers of shape ``(columns, rows)`` in signature order."""
        if block.dtype != self.uniform_target:
            block = block.astype(self.uniform_target)
        return frame_from_block(block, self._uniform_columns)

    def _frame(self, columns: dict[str, Any]) -> pd.DataFrame:
        """The DataFrame of decoded columns, built the cheap way when they share one numpy dtype.

        ``pd.DataFrame(dict_of_arrays)`` costs ~1.5 ms for 13 one-row columns, more than the model;
        one 2-D block with a cached column index costs ~0.05 ms and copies the data once.
        """
        arrays = list(columns.values())
        first = arrays[0] if arrays else None
        if (
            len(arrays) > 1
            and isinstance(first, np.ndarray)
            and first.dtype.kind in "biuf"
            and all(isinstance(a, np.ndarray) and a.ndim == 1 and a.dtype == first.dtype for a in arrays)
        ):
            names = tuple(columns)
            index = self._index_cache.get(names)
            if index is None:
                index = self._index_cache[names] = pd.Index(names, dtype=object)
            # (k, n): the memory layout pandas gives a frame built from columns, so models see
            # bit-identical input (BLAS sums in layout order).
            return frame_from_block(np.vstack(arrays), index)
        return pd.DataFrame(columns, copy=False)

    def _single_tensor(self, inputs: Sequence[RequestInput]) -> np.ndarray:
        if len(inputs) != 1:
            raise InvalidInput(
                f"this model takes one tensor input, got {len(inputs)}: {[i.name for i in inputs]}"
            )
        inp = inputs[0]
        spec = None
        if self.plan.layout is Layout.TENSOR:
            spec = self.plan.fields[0]
        elif self.plan.layout is not Layout.ANY:
            spec = self.plan.by_name.get(inp.name)
            if spec is not None and not spec.is_tensor:
                spec = None
        return decode_tensor(inp, spec)

    def _tensor_dict(self, seen: dict[str, RequestInput]) -> dict[str, np.ndarray]:
        out = {}
        for inp, spec in self._match(seen):
            if spec is not None and not spec.is_tensor:
                spec = None
            out[inp.name] = decode_tensor(inp, spec)
        return out

    # -- params ----------------------------------------------------------------------------------

    def decode_params(self, parameters: Optional[Parameters]) -> Optional[dict[str, Any]]:
        """Params of the request checked against the params schema, with its defaults filled in."""
        given: dict[str, Any] = {}
        if parameters is not None and parameters.model_extra:
            given = {k: v for k, v in parameters.model_extra.items() if k not in RESERVED_PARAMETERS}
        if not given and self.params_schema is None:
            return None  # what validate_params answers, without its work on every request
        return validate_params(v2_param_values(given, self._param_specs), self.params_schema)
