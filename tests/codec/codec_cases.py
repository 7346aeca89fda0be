"""Shared builders of the codec's tests: decoders, V2 requests and the mixed-type signature."""

from __future__ import annotations

import base64

from mlflow.types.schema import ColSpec, Schema
from mlserver.types import InferenceRequest

from mlserver_sigaware.codec import RequestDecoder, ResponseEncoder
from mlserver_sigaware.signature import plan_inputs, plan_outputs


def decoder(schema, params=None, **kw) -> RequestDecoder:
    return RequestDecoder(plan_inputs(schema), params, **kw)


def request(*inputs, **kw) -> InferenceRequest:
    return InferenceRequest(inputs=list(inputs), **kw)


def inp(name, datatype, data, shape=None, **params):
    out = {"name": name, "datatype": datatype, "data": data, "shape": shape or [len(data)]}
    if params:
        out["parameters"] = params
    return out


MIXED = Schema(
    [
        ColSpec("long", "id"),
        ColSpec("double", "score"),
        ColSpec("string", "name"),
        ColSpec("boolean", "flag"),
        ColSpec("datetime", "when"),
        ColSpec("binary", "blob"),
        ColSpec("string", "note", required=False),
    ]
)


def mixed_request(**overrides):
    base = {
        "id": inp("id", "INT64", [1, 2]),
        "score": inp("score", "FP64", [0.5, 1.5]),
        "name": inp("name", "BYTES", ["ann", "bob"]),
        "flag": inp("flag", "BOOL", [True, False]),
        "when": inp("when", "BYTES", ["2024-01-31T12:00:00", "2024-02-01"]),
        "blob": inp("blob", "BYTES", [base64.b64encode(b"\x00\x01").decode(), base64.b64encode(b"xyz").decode()]),
    }
    base.update(overrides)
    return request(*[v for v in base.values() if v is not None])


def encode(prediction, schema=None, requested=None):
    outs = ResponseEncoder(plan_outputs(schema)).encode(prediction, requested)
    return {o.name: o for o in outs}

