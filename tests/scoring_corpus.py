"""Requests for MLflow's scoring protocol (``POST /invocations``), valid and invalid, per zoo model.

Each :class:`ScoringCase` is sent as is -- body bytes and ``Content-Type`` header -- to MLflow's
own scoring server and to ours; the differential tests assert both answer the same status,
``error_code`` and (for 200s) the same bytes.  The cases are chosen to cross every branch of
``mlserver_sigaware.protocols.scoring``: each input format, each content-type rule, every MLflow leniency our
codec does not share (served through MLflow's reading), and every error class.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["CORPUS", "MODELS", "ScoringCase", "WINE_COLUMNS", "WINE_ROW", "cases_for"]

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"

WINE_COLUMNS = [
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280/od315_of_diluted_wines",
    "proline",
]
WINE_ROW = [13.2, 1.78, 2.14, 11.2, 100.0, 2.65, 2.76, 0.26, 1.28, 4.38, 1.05, 3.4, 1050.0]
WINE_ROW2 = [12.37, 0.94, 1.36, 10.6, 88.0, 1.98, 0.57, 0.28, 0.42, 1.95, 1.05, 1.82, 520.0]
WINE_INT_ROW = [13, 2, 2, 11, 100, 3, 3, 0, 1, 4, 1, 3, 1050]

MIXED_ROW = {
    "id": 1,
    "score": 1.5,
    "name": "bob",
    "flag": True,
    "when": "2024-01-31T12:00:00",
    "blob": base64.b64encode(b"hello").decode(),
    "note": "x",
}
MIXED_ROW2 = {
    "id": 2,
    "score": -0.25,
    "name": "Zoë",
    "flag": False,
    "when": "2023-12-31T23:59:59",
    "blob": base64.b64encode(b"\x00\xff").decode(),
    "note": "y",
}

COMPOSITE_ROW = {"tags": ["a", "b"], "meta": {"a": 1, "b": "x"}, "attrs": {"k": 1.5, "l": 2.0}}

#: The zoo kinds the corpus covers (all served by MLflow and by us in the parity test).
MODELS = ("wine", "mixed", "tensor", "params", "text", "dict_tensors", "composite", "failing", "no_signature")


@dataclass(frozen=True)
class ScoringCase:
    id: str
    model: str
    body: bytes
    content_type: Optional[str] = JSON

    def __repr__(self) -> str:  # pytest ids
        return self.id


def _parquet(columns: dict) -> bytes:
    import io

    import pandas as pd

    buffer = io.BytesIO()
    pd.DataFrame(columns).to_parquet(buffer)
    return buffer.getvalue()


def _j(document: Any) -> bytes:
    return json.dumps(document).encode()


def _split(rows: list, columns: list) -> dict:
    return {"dataframe_split": {"columns": columns, "data": rows}}


def _records(*rows: dict) -> dict:
    return {"dataframe_records": list(rows)}


def _case(cid: str, model: str, body: Any, content_type: Optional[str] = JSON) -> ScoringCase:
    raw = body if isinstance(body, bytes) else _j(body)
    return ScoringCase(f"{model}:{cid}", model, raw, content_type)


def _wine() -> list[ScoringCase]:
    split = _split([WINE_ROW, WINE_ROW2], WINE_COLUMNS)
    record = dict(zip(WINE_COLUMNS, WINE_ROW))
    csv = (",".join(WINE_COLUMNS) + "\n" + ",".join(map(str, WINE_ROW)) + "\n").encode()
    return [
        # -- valid, every format
        _case("split", "wine", split),
        _case("records", "wine", _records(record, dict(zip(WINE_COLUMNS, WINE_ROW2)))),
        _case("instances", "wine", {"instances": [record]}),
        _case("inputs-dict", "wine", {"inputs": {c: [v] for c, v in zip(WINE_COLUMNS, WINE_ROW)}}),
        _case("inputs-scalars", "wine", {"inputs": record}),
        _case("inputs-records", "wine", {"inputs": [record]}),
        _case("ints-for-doubles", "wine", _split([WINE_INT_ROW], WINE_COLUMNS)),
        _case("csv", "wine", csv, CSV),
        _case("csv-charset", "wine", csv, "text/csv; charset=utf-8"),
        _case("charset-upper", "wine", split, "application/json; charset=UTF-8"),
        _case("charset-spaces", "wine", split, "application/json ;  charset=utf-8"),
        _case("extra-column", "wine", _split([WINE_ROW + [7]], WINE_COLUMNS + ["extra"])),
        _case("extra-top-level-key", "wine", dict(split, whatever=1)),
        _case("params-ignored", "wine", dict(split, params={"alpha": 3})),
        _case("params-not-dict-ignored", "wine", dict(split, params=[1, 2])),
        _case("numeric-strings", "wine", _split([[str(v) for v in WINE_ROW]], WINE_COLUMNS)),
        _case("bools-for-doubles", "wine", _split([[True] + WINE_ROW[1:]], WINE_COLUMNS)),
        _case("null-double", "wine", _split([[None] + WINE_ROW[1:]], WINE_COLUMNS)),
        _case("nan-literal", "wine", _j(_split([[0.0] + WINE_ROW[1:]], WINE_COLUMNS)).replace(b"[[0.0", b"[[NaN")),
        _case("utf8-bom", "wine", b"\xef\xbb\xbf" + _j(split)),
        _case("split-with-index", "wine", {"dataframe_split": {"columns": WINE_COLUMNS, "data": [WINE_ROW], "index": [5]}}),
        _case("split-ragged-rows", "wine", _split([WINE_ROW, WINE_ROW2[:-1]], WINE_COLUMNS)),
        _case("records-missing-key", "wine", _records(record, dict(zip(WINE_COLUMNS[:-1], WINE_ROW2)))),
        # -- invalid
        _case("missing-column", "wine", _split([WINE_ROW[:-1]], WINE_COLUMNS[:-1])),
        _case("split-no-columns", "wine", {"dataframe_split": {"data": [WINE_ROW]}}),
        _case("bad-string", "wine", _split([WINE_ROW[:-1] + ["abc"]], WINE_COLUMNS)),
        _case("malformed-json", "wine", b'{"dataframe_split": '),
        _case("empty-body", "wine", b""),
        _case("not-utf8", "wine", b'{"inputs": "\xff"}'),
        _case("json-list", "wine", [1, 2]),
        _case("json-scalar", "wine", b"3"),
        _case("unknown-format", "wine", {"data": [WINE_ROW]}),
        _case("params-only", "wine", {"params": {}}),
        _case("two-formats", "wine", dict(split, instances=[record])),
        _case("split-not-dict", "wine", {"dataframe_split": [WINE_ROW]}),
        _case("split-extra-key", "wine", {"dataframe_split": {"columns": WINE_COLUMNS, "data": [WINE_ROW], "x": 1}}),
        _case("records-not-list", "wine", {"dataframe_records": record}),
        _case("inputs-null", "wine", {"inputs": None}),
        _case("inputs-list-of-lists", "wine", {"inputs": [WINE_ROW]}),
        _case("inputs-dict-unequal", "wine", {"inputs": {c: [v] * (1 + (c != "alcohol")) for c, v in record.items()}}),
        _case("csv-bad", "wine", b"alcohol,malic_acid\nabc,1\n", CSV),
        _case("csv-missing-column", "wine", b"alcohol,malic_acid\n1,2\n", CSV),
        _case("csv-not-utf8", "wine", b"alcohol\n\xff\n", CSV),
        # -- content types
        _case("charset-latin1", "wine", split, "application/json; charset=latin-1"),
        _case("unknown-ct-param", "wine", split, "application/json; format=pandas-split"),
        _case("charset-no-value", "wine", split, "application/json; charset"),
        _case("ct-text-plain", "wine", split, "text/plain"),
        _case("ct-uppercase", "wine", split, "Application/JSON"),
        _case("ct-empty", "wine", split, ""),
        _case("ct-missing", "wine", split, None),
        _case("ct-bad-charset-and-type", "wine", split, "text/plain; charset=ascii"),
        _case("parquet-garbage", "wine", b"not parquet", "application/vnd.apache.parquet"),
    ]


def _mixed() -> list[ScoringCase]:
    return [
        _case("records", "mixed", _records(MIXED_ROW, MIXED_ROW2)),
        _case("split", "mixed", _split([list(MIXED_ROW.values())], list(MIXED_ROW))),
        _case("optional-missing", "mixed", _records({k: v for k, v in MIXED_ROW.items() if k != "note"})),
        _case("inputs-dict-binary-raw", "mixed", {"inputs": {k: [v] for k, v in MIXED_ROW.items()}}),
        _case("instances-binary-raw", "mixed", {"instances": [MIXED_ROW]}),
        _case("inputs-records", "mixed", {"inputs": [MIXED_ROW]}),
        _case("null-boolean", "mixed", _records(dict(MIXED_ROW, flag=None))),
        _case("null-long", "mixed", _records(dict(MIXED_ROW, id=None))),
        _case("null-string", "mixed", _records(dict(MIXED_ROW, name=None))),
        _case("null-optional", "mixed", _records(dict(MIXED_ROW, note=None))),
        _case("inputs-null-optional", "mixed", {"inputs": {k: [None if k == "note" else v] for k, v in MIXED_ROW.items()}}),
        _case("float-for-long", "mixed", _records(dict(MIXED_ROW, id=1.0))),
        _case("fraction-for-long", "mixed", _records(dict(MIXED_ROW, id=1.5))),
        _case("string-for-long", "mixed", _records(dict(MIXED_ROW, id="7"))),
        _case("int-for-string", "mixed", _records(dict(MIXED_ROW, name=5))),
        _case("int-for-boolean", "mixed", _records(dict(MIXED_ROW, flag=0))),
        _case("string-for-boolean", "mixed", _records(dict(MIXED_ROW, flag="yes"))),
        _case("zoned-datetime", "mixed", _records(dict(MIXED_ROW, when="2024-01-31T12:00:00Z"))),
        _case("date-only", "mixed", _records(dict(MIXED_ROW, when="2024-01-31"))),
        _case("mixed-datetime-formats", "mixed", _records(MIXED_ROW, dict(MIXED_ROW2, when="2024-02-01"))),
        _case("bad-datetime", "mixed", _records(dict(MIXED_ROW, when="not a date"))),
        _case("lenient-base64", "mixed", _records(dict(MIXED_ROW, blob="aGVs\nbG8="))),
        _case("bad-base64", "mixed", _records(dict(MIXED_ROW, blob="aGVsbG8"))),
        _case("number-for-binary", "mixed", _records(dict(MIXED_ROW, blob=5))),
        _case("missing-required", "mixed", _records({k: v for k, v in MIXED_ROW.items() if k != "id"})),
        _case("csv", "mixed", b"id,score,name,flag,when,blob,note\n1,1.5,bob,true,2024-01-31T12:00:00,aGVsbG8=,x\n", CSV),
    ]


def _tensor() -> list[ScoringCase]:
    rows = [[1.0, 2.0, 3.0, 4.0], [-1.0, 0.5, 0.25, 8.0]]
    return [
        _case("inputs", "tensor", {"inputs": rows}),
        _case("instances", "tensor", {"instances": rows}),
        _case("ints", "tensor", {"inputs": [[1, 2, 3, 4]]}),
        _case("split", "tensor", _split(rows, ["a", "b", "c", "d"])),
        _case("split-no-columns", "tensor", {"dataframe_split": {"data": rows}}),
        _case("records", "tensor", _records(*[dict(zip("abcd", r)) for r in rows])),
        _case("null-float", "tensor", {"inputs": [[None, 2.0, 3.0, 4.0]]}),
        _case("bools", "tensor", {"inputs": [[True, False, True, False]]}),
        _case("numeric-strings", "tensor", {"inputs": [["1", "2", "3", "4"]]}),
        _case("wrong-width", "tensor", {"inputs": [[1.0, 2.0, 3.0]]}),
        _case("one-dimensional", "tensor", {"inputs": [1.0, 2.0, 3.0, 4.0]}),
        _case("scalar", "tensor", {"inputs": 1.0}),
        _case("ragged", "tensor", {"inputs": [[1.0, 2.0, 3.0, 4.0], [1.0]]}),
        _case("strings", "tensor", {"inputs": [["a", "b", "c", "d"]]}),
        _case("dict", "tensor", {"inputs": {"x": rows}}),
        _case("three-dimensional", "tensor", {"inputs": [rows]}),
        _case("csv", "tensor", b"a,b,c,d\n1,2,3,4\n", CSV),
    ]


def _params() -> list[ScoringCase]:
    split = _split([[1.0], [2.0]], ["x"])
    return [
        _case("defaults", "params", split),
        _case("all", "params", dict(split, params={"multiplier": 2.5, "suffix": "s", "flags": True, "weights": [1.0, 2.0]})),
        _case("int-for-double", "params", dict(split, params={"multiplier": 3})),
        _case("null-params", "params", dict(split, params=None)),
        _case("unknown-param-ignored", "params", dict(split, params={"nope": 1, "multiplier": 2.0})),
        _case("inputs-list", "params", {"inputs": [1.0, 2.0], "params": {"suffix": "z"}}),
        _case("instances-list", "params", {"instances": [1.0, 2.0]}),
        _case("inputs-scalar-dict", "params", {"inputs": {"x": 4.0}}),
        _case("bad-type", "params", dict(split, params={"multiplier": "abc"})),
        _case("bool-for-double", "params", dict(split, params={"multiplier": True})),
        _case("string-for-list", "params", dict(split, params={"weights": "[1.0, 2.0]"})),
        _case("scalar-for-list", "params", dict(split, params={"weights": 1.0})),
        _case("list-for-scalar", "params", dict(split, params={"multiplier": [1.0]})),
        _case("params-not-dict", "params", dict(split, params=[1])),
        _case("null-param-value", "params", dict(split, params={"multiplier": None})),
        _case("llm-input-key-with-params", "params", {"x": 3.0, "input": "ignored", "multiplier": 2.0}),
        _case("llm-missing-column", "params", {"input": [1.0], "suffix": "s"}),
        _case("parquet-int-for-double", "params", _parquet({"x": [1, 2]}), PARQUET),
        _case("parquet", "params", _parquet({"x": [1.5, 2.0]}), PARQUET),
        _case("bad-input-and-params", "params", dict(_split([["a"]], ["x"]), params={"multiplier": "abc"})),
        _case("missing-input-and-bad-params", "params", dict(_split([[1.0]], ["y"]), params={"multiplier": "abc"})),
    ]


def _text() -> list[ScoringCase]:
    return [
        _case("inputs-list", "text", {"inputs": ["hello world", "good night"]}),
        _case("split", "text", _split([["hello world"], ["my cat"]], ["prompt"])),
        _case("records", "text", _records({"prompt": "I love wine"})),
        _case("instances", "text", {"instances": ["hello"]}),
        _case("non-ascii", "text", {"inputs": ["hello Zoë ☃"]}),
        _case("llm-prompt", "text", {"prompt": "hello world"}),
        _case("llm-prompt-list", "text", {"prompt": ["hello world", "good night"]}),
        _case("llm-with-params", "text", {"prompt": "hello", "params": {"x": 1}}),
        _case("llm-beside-format", "text", {"prompt": "hello", "inputs": ["x"]}),
        _case("llm-messages", "text", {"messages": [{"role": "user", "content": "hi"}]}),
        _case("number-for-string", "text", {"inputs": [5]}),
        _case("null-string", "text", {"inputs": [None]}),
        _case("wrong-column", "text", _split([["hello"]], ["text"])),
        _case("inputs-scalar-dict", "text", {"inputs": {"prompt": "good morning"}}),
        _case("csv", "text", b"prompt\nhello world\n", CSV),
    ]


def _dict_tensors() -> list[ScoringCase]:
    return [
        _case("inputs", "dict_tensors", {"inputs": {"a": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "b": [1, 2]}}),
        _case("instances", "dict_tensors", {"instances": [{"a": [1.0, 2.0, 3.0], "b": 1}, {"a": [4.0, 5.0, 6.0], "b": 2}]}),
        _case("split", "dict_tensors", _split([[[1.0, 2.0, 3.0], 1]], ["a", "b"])),
        _case("extra-tensor", "dict_tensors", {"inputs": {"a": [[1.0, 2.0, 3.0]], "b": [1], "c": [0]}}),
        _case("missing-tensor", "dict_tensors", {"inputs": {"a": [[1.0, 2.0, 3.0]]}}),
        _case("floats-for-ints", "dict_tensors", {"inputs": {"a": [[1.0, 2.0, 3.0]], "b": [1.5]}}),
        _case("bad-shape", "dict_tensors", {"inputs": {"a": [[1.0, 2.0]], "b": [1]}}),
        _case("list-input", "dict_tensors", {"inputs": [[1.0, 2.0, 3.0]]}),
    ]


def _composite() -> list[ScoringCase]:
    return [
        _case("records", "composite", _records(COMPOSITE_ROW)),
        _case("split", "composite", _split([list(COMPOSITE_ROW.values())], list(COMPOSITE_ROW))),
        _case("inputs-one-row", "composite", {"inputs": COMPOSITE_ROW}),
        _case("instances", "composite", {"instances": [COMPOSITE_ROW]}),
        _case("int-attrs", "composite", _records(dict(COMPOSITE_ROW, attrs={"k": 1}))),
        _case("object-extra-field", "composite", _records(dict(COMPOSITE_ROW, meta={"a": 1, "b": "x", "c": 2}))),
        _case("object-missing-field", "composite", _records(dict(COMPOSITE_ROW, meta={"a": 1}))),
        _case("array-of-numbers", "composite", _records(dict(COMPOSITE_ROW, tags=[1, 2]))),
        _case("not-an-array", "composite", _records(dict(COMPOSITE_ROW, tags="a"))),
    ]


def _failing() -> list[ScoringCase]:
    return [
        _case("ok", "failing", _split([[1.0], [2.0]], ["x"])),
        _case("model-raises", "failing", _split([[-1.0]], ["x"])),
        _case("model-raises-inputs", "failing", {"inputs": [-1.0]}),
    ]


def _no_signature() -> list[ScoringCase]:
    return [
        _case("split", "no_signature", _split([[1, "a"], [2, "b"]], ["n", "s"])),
        _case("inputs-list", "no_signature", {"inputs": [[1, 2], [3, 4]]}),
        _case("inputs-dict", "no_signature", {"inputs": {"a": [1, 2], "b": ["x", "y"]}}),
        _case("instances-records", "no_signature", {"instances": [{"a": 1}, {"a": 2}]}),
        _case("params-ignored", "no_signature", {"inputs": [1], "params": {"p": 1}}),
        _case("csv", "no_signature", b"a,b\n1,x\n", CSV),
    ]


CORPUS: list[ScoringCase] = (
    _wine() + _mixed() + _tensor() + _params() + _text() + _dict_tensors() + _composite() + _failing() + _no_signature()
)
assert len({c.id for c in CORPUS}) == len(CORPUS), "duplicate case ids"


def cases_for(*models: str) -> list[ScoringCase]:
    return [c for c in CORPUS if c.model in models]
