"""DataFrames over one 2-D block of numbers, built without pandas' per-call re-checks.

Why a module of its own: pandas' constructor costs more than a small model's whole prediction (see
:func:`frame_from_block`), and the fast builder relies on pandas internals, so it is probed at import
and falls back to the documented path when pandas changes.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
from mlflow.types.schema import DataType

from ..signature import Layout, SchemaPlan
from .values import FLOAT_TYPES

__all__ = ["frame_from_block", "frame_values", "uniform_float_target"]

try:  # pandas >= 3: the documented way to wrap an existing block without the constructor's checks
    from pandas.api.internals import create_dataframe_from_blocks as _from_blocks
except ImportError:  # pragma: no cover - older pandas
    _from_blocks = None


def _documented_frame(block: np.ndarray, columns: pd.Index) -> pd.DataFrame:
    if _from_blocks is None:  # pragma: no cover - older pandas
        return pd.DataFrame(block.T, columns=columns, copy=False)
    placement = np.arange(block.shape[0])
    return _from_blocks([(block, placement)], index=pd.RangeIndex(block.shape[1]), columns=columns)


def _direct_frame_builder() -> Optional[Callable[[np.ndarray, pd.Index], pd.DataFrame]]:
    """pandas' own three steps under ``create_dataframe_from_blocks``, for a numeric numpy block.

    That function re-checks, on every call, what is fixed by construction here (one 2-D numeric
    block, its placement covering every column, axes of the right lengths): ~23 µs a request, about
    a sixth of what our runtime spends on a one-row request. The same three steps without the
    re-checks cost ~7 µs. They are pandas internals, so the builder is only used when it imports
    and, on a probe of every numeric kind, builds exactly the frame of the documented path (same
    values, dtypes, axes, one block, no copy); otherwise ``None`` and the documented path serves.
    """
    try:
        from pandas._libs.internals import BlockPlacement
        from pandas.core.internals.blocks import get_block_type
        from pandas.core.internals.managers import BlockManager
    except ImportError:  # pragma: no cover - other pandas layout
        return None
    placements: dict[int, Any] = {}

    def build(block: np.ndarray, columns: pd.Index) -> pd.DataFrame:
        width = block.shape[0]
        placement = placements.get(width)
        if placement is None:
            placement = placements[width] = BlockPlacement(slice(0, width))
        klass = get_block_type(block.dtype)
        index = pd.RangeIndex._simple_new(range(block.shape[1]))
        blocks = (klass(block, ndim=2, placement=placement),)
        manager = BlockManager(blocks, [columns, index], verify_integrity=False)
        return pd.DataFrame._from_mgr(manager, manager.axes)

    try:
        columns = pd.Index(["a", "b", "c"], dtype=object)
        for dtype in ("float64", "float32", "int64", "int32", "uint8", "bool"):
            for rows in (0, 1, 5):
                probe = np.arange(3 * rows).reshape(3, rows).astype(dtype)
                got = build(probe, columns)
                want = _documented_frame(probe, columns)
                pd.testing.assert_frame_equal(got, want, check_exact=True)
                if len(got._mgr.blocks) != 1 or (rows and not np.shares_memory(got.to_numpy(), probe)):
                    return None
    except Exception:  # pragma: no cover - pandas internals changed: use the documented path
        return None
    return build


_direct_frame = _direct_frame_builder()


def frame_from_block(block: np.ndarray, columns: pd.Index) -> pd.DataFrame:
    """A DataFrame over ``block`` (shape ``(columns, rows)``, one dtype), without copying it.

    Same frame as ``pd.DataFrame(block.T, columns=columns, copy=False)`` (a test compares them), at
    a fraction of the cost: that constructor re-derives what we already know (2-D, one dtype, sizes).
    ``columns`` is cached per signature; each frame gets its own view of it, so a model that names
    its input's column axis (``df.columns.name = ...``, an in-place change) does not rename it in
    every later request's frame.
    """
    columns = columns.view()
    if _direct_frame is not None and block.dtype.kind in "biuf":
        return _direct_frame(block, columns)
    return _documented_frame(block, columns)


def _block_values(frame: pd.DataFrame) -> Optional[np.ndarray]:
    """``np.asarray(frame)`` read straight off a frame of one numeric block in column order (the
    frames :func:`frame_from_block` builds), else ``None``. pandas' ``__array__`` gets there through
    ``frame.dtypes``, a new Series on every call (~50 µs of a ~400 µs one-row request)."""
    blocks = getattr(frame._mgr, "blocks", None)
    if blocks is None or len(blocks) != 1:
        return None
    block = blocks[0]
    values = block.values
    if not isinstance(values, np.ndarray) or values.ndim != 2 or values.dtype.kind not in "biuf":
        return None
    placement = block.mgr_locs
    if not (placement.is_slice_like and placement.as_slice == slice(0, values.shape[0], 1)):
        return None
    out = values.T.view()
    out.flags.writeable = False  # as pandas (copy-on-write) hands it out
    return out


def _values_reader() -> Optional[Callable[[pd.DataFrame], Optional[np.ndarray]]]:
    """:func:`_block_values` when, on probes of each numeric kind, it gives exactly what
    ``np.asarray(frame)`` gives (values, dtype, shape, memory, flags); else ``None`` (pandas internals)."""
    try:
        for dtype in (np.float64, np.float32, np.int64, np.int32, np.uint8, np.bool_):
            block = (np.arange(6) % 2).astype(dtype).reshape(3, 2)
            frame = frame_from_block(block, pd.Index(["a", "b", "c"], dtype=object))
            got, want = _block_values(frame), np.asarray(frame)
            if (
                got is None
                or got.dtype != want.dtype
                or got.shape != want.shape
                or not np.array_equal(got, want)
                or got.flags.writeable != want.flags.writeable
                or got.flags.f_contiguous != want.flags.f_contiguous
                or got.__array_interface__["data"] != want.__array_interface__["data"]
            ):
                return None
    except Exception:  # pragma: no cover - another pandas layout
        return None
    return _block_values


def frame_values(frame: pd.DataFrame) -> np.ndarray:
    """``np.asarray(frame)``, cheaply for the single-block frames of the decoder (see above)."""
    if _read_values is not None:
        values = _read_values(frame)
        if values is not None:
            return values
    return np.asarray(frame)


_read_values = _values_reader()


def uniform_float_target(plan: SchemaPlan) -> Optional[np.dtype]:
    """The one float dtype of a signature made only of named float/double columns, else ``None``."""
    if plan.layout is not Layout.COLUMNS or len(plan.fields) < 2:  # one column: see _frame
        return None
    targets = set()
    for spec in plan.fields:
        if spec.is_tensor or not spec.named or not isinstance(spec.mlflow_type, DataType):
            return None
        target = FLOAT_TYPES.get(spec.mlflow_type)
        if target is None:
            return None
        targets.add(target)
    return targets.pop() if len(targets) == 1 else None

