"""The shared table (``tests/type_cases.py``) through the V2 codec, each value sent as a V2 client would.

A column value is one row of a one-column request (``datatype`` and ``content_type`` from the signature's
metadata, composite values as JSON text); a tensor value is one row of a ``[1, ...]`` tensor. The codec
accepts when it decodes without a 400. ``tests/protocols/test_typed.py`` runs the same table through the typed API.
"""

from __future__ import annotations

import pytest
from mlserver.types import Parameters

from mlserver_sigaware.codec import RequestDecoder
from mlserver_sigaware.errors import InvalidParams
from mlserver_sigaware.signature import plan_inputs
from tests.type_cases import CASES, PARAM_CASES, ParamCase, TypeCase, codec_accepts, input_schema, param_schema


def _param(case: TypeCase):
    """A row the codec crashes on (``codec_bug``) is an expected failure until the codec is fixed."""
    marks = []
    if case.codec_bug is not None:
        marks.append(
            pytest.mark.xfail(
                raises=case.codec_bug, strict=False,
                reason=f"codec bug: {case.codec_bug.__name__} instead of a 400 ({case.why})",
            )
        )
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # float32 overflow to inf, as the codec does
@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_v2_codec_agrees_with_the_table(case: TypeCase):
    assert codec_accepts(case) is case.codec_accepts, case.why or "the table says otherwise"


def codec_accepts_param(case: ParamCase) -> bool:
    decoder = RequestDecoder(plan_inputs(input_schema("double")), param_schema(case))
    try:
        decoder.decode_params(Parameters(**{"p": case.value}))
    except InvalidParams:
        return False
    return True


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in PARAM_CASES])
def test_v2_params_agree_with_the_table(case: ParamCase):
    assert codec_accepts_param(case) is case.codec_accepts, case.why or "the table says otherwise"
