"""Valid requests for every zoo model and what each must answer, transport-neutral (see :mod:`v2`).

The expected values are computed here independently of the runtime (by hand, or for the wine
regressor by the saved model itself loaded in the test process), so a round trip proves the right
rows reached the model and the right values came back.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Optional

try:
    from v2 import Reply, Tensor, shape_matches
except ImportError:  # tests/ and tests/integration/ imported as packages
    from tests.integration.v2 import Reply, Tensor, shape_matches

#: sklearn's wine columns; one of them has a "/" in its name.
SLASH_COLUMN = "od280/od315_of_diluted_wines"


@dataclass
class Expected:
    datatype: str
    shape: list[int]
    data: list
    approx: bool = False


@dataclass
class Case:
    model: str
    inputs: list[Tensor]
    expected: dict[str, Expected]
    parameters: Optional[dict[str, Any]] = None
    #: Transports that cannot express this request (e.g. JSON nulls over gRPC).
    skip: tuple[str, ...] = field(default_factory=tuple)


def check_reply(reply: Reply, case: Case, outputs: Optional[list[str]] = None) -> None:
    """``reply`` is a success with exactly the expected outputs (or the ``outputs`` subset)."""
    assert reply.ok, f"{case.model}: {reply.code} {reply.raw}"
    assert "Traceback" not in reply.raw
    wanted = list(case.expected) if outputs is None else list(outputs)
    assert list(reply.outputs) == wanted, reply.raw
    for name in wanted:
        want = case.expected[name]
        got = reply.outputs[name]
        assert got.datatype == want.datatype, (name, got.datatype, want.datatype)
        assert got.shape == want.shape, (name, got.shape, want.shape)
        if want.approx:
            assert len(got.data) == len(want.data)
            for g, w in zip(got.data, want.data):
                assert math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-12), (name, got.data, want.data)
        else:
            assert got.data == want.data, (name, got.data, want.data)


def metadata_matches(meta: dict[str, Any], reply: Reply) -> None:
    """The outputs /infer returned are the ones metadata promises (names, datatypes, shapes)."""
    declared = {o["name"]: o for o in meta.get("outputs") or []}
    assert list(reply.outputs) == list(declared), (list(reply.outputs), list(declared))
    for name, out in reply.outputs.items():
        assert out.datatype == declared[name]["datatype"], name
        assert shape_matches(out.shape, list(declared[name]["shape"])), (
            name,
            out.shape,
            declared[name]["shape"],
        )


# ------------------------------------------------------------------------------------------ wine


def wine_frame():
    from sklearn.datasets import load_wine

    return load_wine(as_frame=True).frame.drop(columns="target")


def wine_inputs(rows) -> list[Tensor]:
    """One FP64 column per feature (``rows`` is a slice of :func:`wine_frame`)."""
    return [
        Tensor(str(c), "FP64", [len(rows)], [float(v) for v in rows[c]]) for c in rows.columns
    ]


def wine_case(rows, predictions: list[float], model: str = "wine") -> Case:
    return Case(
        model,
        wine_inputs(rows),
        {"predictions": Expected("FP64", [len(rows)], list(predictions), approx=True)},
    )


# ----------------------------------------------------------------------------------------- mixed


def mixed_row(i: int, note: Optional[str] = "n") -> dict[str, Any]:
    """A distinct row of the ``mixed`` model for index ``i``."""
    row = {
        "id": 1000 + i,
        "score": i + 0.25,
        "name": f"caller-{i} ünï",
        "flag": i % 2 == 0,
        "when": (dt.datetime(2024, 1, 28, 6, 30) + dt.timedelta(days=i, seconds=i)).isoformat(),
        "blob": bytes([i % 256, 0, 255]) + b"x" * (i % 5),
    }
    if note is not None:
        row["note"] = f"{note}{i}"
    return row


def mixed_inputs(rows: list[dict[str, Any]], with_note: bool = True) -> list[Tensor]:
    n = len(rows)
    tensors = [
        Tensor("id", "INT64", [n], [r["id"] for r in rows]),
        Tensor("score", "FP64", [n], [r["score"] for r in rows]),
        Tensor("name", "BYTES", [n], [r["name"] for r in rows]),
        Tensor("flag", "BOOL", [n], [r["flag"] for r in rows]),
        Tensor("when", "BYTES", [n], [r["when"] for r in rows]),
        # Metadata says content_type "base64" for binary columns: every transport sends base64.
        Tensor("blob", "BYTES", [n], [base64.b64encode(r["blob"]).decode("ascii") for r in rows]),
    ]
    if with_note:
        tensors.append(Tensor("note", "BYTES", [n], [r.get("note") for r in rows]))
    return tensors


def mixed_expected(rows: list[dict[str, Any]], with_note: bool = True) -> dict[str, Expected]:
    n = len(rows)
    return {
        "id": Expected("INT64", [n], [r["id"] for r in rows]),
        "score2": Expected("FP64", [n], [r["score"] * 2 for r in rows]),
        "greeting": Expected("BYTES", [n], [f"hello {r['name']}" for r in rows]),
        "flag_not": Expected("BOOL", [n], [not r["flag"] for r in rows]),
        "when_next": Expected(
            "BYTES",
            [n],
            [(dt.datetime.fromisoformat(r["when"]) + dt.timedelta(days=1)).isoformat() for r in rows],
        ),
        "blob_len": Expected("INT64", [n], [len(r["blob"]) for r in rows]),
        "has_note": Expected(
            "BOOL", [n], [with_note and r.get("note") is not None for r in rows]
        ),
    }


def mixed_case(rows: list[dict[str, Any]], model: str = "mixed", with_note: bool = True) -> Case:
    return Case(model, mixed_inputs(rows, with_note), mixed_expected(rows, with_note))


# ------------------------------------------------------------------------------------ the others


def tensor_case(rows: list[list[float]], model: str = "tensor") -> Case:
    n = len(rows)
    flat = [float(v) for r in rows for v in r]
    out = [v for r in rows for v in (float(sum(r)), float(max(r)))]
    return Case(
        model,
        [Tensor("input-0", "FP32", [n, 4], flat)],
        {"predictions": Expected("FP32", [n, 2], out)},
    )


def dict_tensors_case() -> Case:
    return Case(
        "dict_tensors",
        [
            Tensor("a", "FP64", [2, 3], [1.0, 2.0, 3.5, -4.0, 5.0, 6.0]),
            Tensor("b", "INT64", [2], [5, -7]),
        ],
        {
            "a_sum": Expected("FP64", [2], [6.5, 7.0]),
            "b_double": Expected("INT64", [2], [10, -14]),
        },
    )


def params_case(
    parameters: Optional[dict[str, Any]] = None,
    multiplier: float = 1.0,
    weights: tuple[float, ...] = (1.0,),
    suffix: str = "",
    flags: bool = False,
) -> Case:
    xs = [1.0, -2.5]
    return Case(
        "params",
        [Tensor("x", "FP64", [2], xs)],
        {
            "y": Expected("FP64", [2], [x * multiplier * sum(weights) for x in xs], approx=True),
            "tag": Expected("BYTES", [2], [suffix, suffix]),
            "flags": Expected("BOOL", [2], [flags, flags]),
        },
        parameters=parameters,
    )


def text_case(model: str = "text", lang: str = "de") -> Case:
    prompts = ["hello world", "good night my friend"]
    translations = {
        "de": ["hallo Welt", "gut Nacht mein Freund"],
        "fr": ["bonjour monde", "bon nuit mon ami"],
    }[lang]
    return Case(
        model,
        [Tensor("prompt", "BYTES", [2], prompts)],
        {"translation_text": Expected("BYTES", [2], translations)},
    )


def composite_case() -> Case:
    return Case(
        "composite",
        [
            Tensor("tags", "BYTES", [2], ['["a", "b", "c"]', "[]"]),
            Tensor("meta", "BYTES", [2], ['{"a": 1, "b": "first"}', '{"a": 2, "b": "zweite"}']),
            Tensor("attrs", "BYTES", [2], ['{"p": 1.5, "q": 2}', "{}"]),
        ],
        {
            "n_tags": Expected("INT64", [2], [3, 0]),
            "meta_b": Expected("BYTES", [2], ["first", "zweite"]),
            "attrs_sum": Expected("FP64", [2], [3.5, 0.0]),
        },
    )


def no_signature_case() -> Case:
    return Case(
        "no_signature",
        [Tensor("a", "FP64", [2], [1.5, 2.5]), Tensor("s", "BYTES", [2], ["p", "qü"])],
        {"a": Expected("FP64", [2], [1.5, 2.5]), "s": Expected("BYTES", [2], ["p", "qü"])},
    )


def failing_ok_case(model: str = "failing") -> Case:
    return Case(model, [Tensor("x", "FP64", [2], [0.5, 3.0])], {"x": Expected("FP64", [2], [0.5, 3.0])})


def failing_boom_inputs() -> list[Tensor]:
    return [Tensor("x", "FP64", [2], [1.0, -1.0])]


#: The message ``FailingModel`` raises with.
BOOM = "model exploded on purpose"


# ---------------------------------------------------------------------------------------- errors


@dataclass
class ErrorCase:
    """A request that must fail with ``status`` (HTTP; the gRPC code is mapped) and a message
    containing every fragment; ``recover`` is the model whose valid case must succeed after it."""

    model: str
    inputs: list[Tensor]
    status: int
    fragments: tuple[str, ...]
    parameters: Optional[dict[str, Any]] = None
    outputs: Optional[list[str]] = None
    recover: Optional[str] = None


def error_cases(wine_rows) -> dict[str, ErrorCase]:
    """Error cases every transport can express (typed tensors, scalar or text params)."""
    mixed = mixed_inputs([mixed_row(0), mixed_row(1)])

    def replace(tensors: list[Tensor], name: str, new: Tensor) -> list[Tensor]:
        return [new if t.name == name else t for t in tensors]

    wine_missing = [t for t in wine_inputs(wine_rows) if t.name != SLASH_COLUMN]
    return {
        "missing-required-input": ErrorCase(
            "wine", wine_missing, 400, (f"missing required input '{SLASH_COLUMN}'",)
        ),
        "wrong-datatype-bytes-for-double": ErrorCase(
            "failing", [Tensor("x", "BYTES", [1], ["1.5"])], 400, ("input 'x'", "BYTES")
        ),
        "wrong-datatype-float-for-long": ErrorCase(
            "mixed", replace(mixed, "id", Tensor("id", "FP64", [2], [1.5, 2.0])), 400, ("input 'id'", "FP64")
        ),
        "value-not-castable-datetime": ErrorCase(
            "mixed",
            replace(mixed, "when", Tensor("when", "BYTES", [2], ["2024-01-01T00:00:00", "not a date"])),
            400,
            ("input 'when'", "ISO-8601"),
        ),
        "value-not-castable-base64": ErrorCase(
            "mixed", replace(mixed, "blob", Tensor("blob", "BYTES", [2], ["%%%", "AA=="])), 400, ("input 'blob'", "base64")
        ),
        "rows-mismatch": ErrorCase(
            "mixed", replace(mixed, "score", Tensor("score", "FP64", [1], [1.0])), 400, ("input 'score'", "rows")
        ),
        "tensor-shape-mismatch": ErrorCase(
            "tensor", [Tensor("input-0", "FP32", [2, 3], [1.0] * 6)], 400, ("input 'input-0'", "[2, 3]")
        ),
        "unknown-input": ErrorCase(
            "failing",
            [Tensor("x", "FP64", [1], [1.0]), Tensor("typo_column", "FP64", [1], [1.0])],
            400,
            ("unknown input", "typo_column"),
        ),
        "unknown-param": ErrorCase(
            "params", [Tensor("x", "FP64", [1], [1.0])], 400, ("unknown param", "bogus_param"), parameters={"bogus_param": 1}
        ),
        "wrong-typed-param-double": ErrorCase(
            "params", [Tensor("x", "FP64", [1], [1.0])], 400, ("param 'multiplier'", "double"), parameters={"multiplier": "lots"}
        ),
        "wrong-typed-param-boolean": ErrorCase(
            "params", [Tensor("x", "FP64", [1], [1.0])], 400, ("param 'flags'", "boolean"), parameters={"flags": "maybe"}
        ),
        "param-without-params-schema": ErrorCase(
            "failing", [Tensor("x", "FP64", [1], [1.0])], 400, ("temperature", "no params schema"), parameters={"temperature": 1}
        ),
        "unknown-output": ErrorCase(
            "failing", [Tensor("x", "FP64", [1], [1.0])], 400, ("unknown output", "nope_output"), outputs=["nope_output"]
        ),
        "unknown-model": ErrorCase(
            "no-such-model", [Tensor("x", "FP64", [1], [1.0])], 404, ("no-such-model",), recover="wine"
        ),
        "model-raises": ErrorCase("failing", failing_boom_inputs(), 500, (BOOM,)),
    }


def check_error(reply: Reply, case: ErrorCase, expected_code: Any) -> None:
    assert reply.code == expected_code, (reply.code, reply.raw)
    assert reply.error, reply.raw
    for fragment in case.fragments:
        assert fragment in reply.error, (fragment, reply.error)
    assert "Traceback" not in reply.raw
    assert 'File "' not in reply.raw  # no stack frame of any kind


# ------------------------------------------------------------------------------ the case tables

#: Names of :func:`build_valid_cases` (known at collection time, for parametrize ids).
VALID_CASES = (
    "wine",
    "mixed",
    "mixed-without-optional",
    "mixed-null-optional",
    "tensor",
    "dict_tensors",
    "params-defaults",
    "text",
    "composite",
    "no_signature",
    "failing-ok",
)
#: Cases a transport cannot express: a JSON null in a BYTES tensor exists over REST only.
TRANSPORT_LIMITS = {"mixed-null-optional": ("triton_http", "triton_http_binary", "triton_grpc")}


def build_valid_cases(wine_rows, wine_predictions) -> dict[str, Case]:
    rows = [mixed_row(i) for i in range(3)]
    null_rows = [mixed_row(0), mixed_row(1, note=None), mixed_row(2)]
    cases = {
        "wine": wine_case(wine_rows, wine_predictions),
        "mixed": mixed_case(rows),
        "mixed-without-optional": mixed_case(rows, with_note=False),
        "mixed-null-optional": mixed_case(null_rows),
        "tensor": tensor_case([[1.0, 2.0, 3.0, 4.0], [5.0, -6.0, 7.5, 0.0]]),
        "dict_tensors": dict_tensors_case(),
        "params-defaults": params_case(),
        "text": text_case(),
        "composite": composite_case(),
        "no_signature": no_signature_case(),
        "failing-ok": failing_ok_case(),
    }
    assert tuple(cases) == VALID_CASES
    return cases


#: Names of :func:`error_cases` (for parametrize ids).
ERROR_CASES = (
    "missing-required-input",
    "wrong-datatype-bytes-for-double",
    "wrong-datatype-float-for-long",
    "value-not-castable-datetime",
    "value-not-castable-base64",
    "rows-mismatch",
    "tensor-shape-mismatch",
    "unknown-input",
    "unknown-param",
    "wrong-typed-param-double",
    "wrong-typed-param-boolean",
    "param-without-params-schema",
    "unknown-output",
    "unknown-model",
    "model-raises",
)
