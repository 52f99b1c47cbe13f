"""Makes tiny_cross_encoder/: a small random BERT cross-encoder and its reference scores, for the
CrossEncoderReranker test.

No PyPI package ships cross-encoder weights, so the test checks the Rust forward pass against this
independent NumPy implementation of Hugging Face's BertForSequenceClassification (embeddings ->
encoder -> tanh pooler on [CLS] -> linear classifier, one label) on a model small enough to commit.

How it was made (once; the output is committed):
    python3 -m venv /tmp/cepy && /tmp/cepy/bin/pip install numpy tokenizers
    /tmp/cepy/bin/python llms/tests/data/make_tiny_cross_encoder.py llms/tests/data/tiny_cross_encoder

It writes config.json, tokenizer.json (a BERT WordPiece tokenizer whose pair template gives the
document token type 1), model.safetensors (float32, the tensor names of a transformers checkpoint)
and reference.json: for each (query, document) pair the token ids and type ids (pairs truncated
longest-first to max_position_embeddings, as transformers' tokenizer does with truncation=True)
and the classifier logit.
"""
import json
import math
import os
import struct
import sys

import numpy as np
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

HIDDEN, LAYERS, HEADS, INTERMEDIATE, MAX_POS, EPS = 16, 2, 2, 32, 32, 1e-12

WORDS = (
    "how many people live in berlin had a population of registered inhabitants an area square "
    "kilometers is well known for its museums new york city famous the metropolitan museum art "
    "what capital france paris rust memory safety without garbage collector cats purr"
).split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
VOCAB = {t: i for i, t in enumerate(SPECIAL + WORDS + [".", ",", "?", "##s", "##ing"])}

PAIRS = [
    ("How many people live in Berlin?", "Berlin had a population of registered inhabitants."),
    ("How many people live in Berlin?", "Berlin is well known for its museums."),
    ("What is the capital of France?", "Paris is the capital of France."),
    ("What is the capital of France?", "Rust has memory safety without a garbage collector."),
    ("cats", "Cats purr."),
    # Longer than MAX_POS tokens together: truncated longest-first.
    (
        "what is the capital",
        "New York City is famous for the Metropolitan Museum of Art, and Berlin is well known for "
        "its museums; Paris is the capital of France and cats purr in a square.",
    ),
]


def tokenizer():
    tok = Tokenizer(models.WordPiece(VOCAB, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", VOCAB["[CLS]"]), ("[SEP]", VOCAB["[SEP]"])],
    )
    return tok


def weights(rng):
    w = {}

    def dense(name, out, inp):
        w[f"{name}.weight"] = rng.normal(0, 0.4, (out, inp)).astype(np.float32)
        w[f"{name}.bias"] = rng.normal(0, 0.1, (out,)).astype(np.float32)

    def norm(name):
        w[f"{name}.weight"] = (1 + rng.normal(0, 0.1, (HIDDEN,))).astype(np.float32)
        w[f"{name}.bias"] = rng.normal(0, 0.1, (HIDDEN,)).astype(np.float32)

    e = "bert.embeddings"
    w[f"{e}.word_embeddings.weight"] = rng.normal(0, 1, (len(VOCAB), HIDDEN)).astype(np.float32)
    w[f"{e}.position_embeddings.weight"] = rng.normal(0, 0.5, (MAX_POS, HIDDEN)).astype(np.float32)
    w[f"{e}.token_type_embeddings.weight"] = rng.normal(0, 0.5, (2, HIDDEN)).astype(np.float32)
    norm(f"{e}.LayerNorm")
    for i in range(LAYERS):
        p = f"bert.encoder.layer.{i}"
        for m in ("query", "key", "value"):
            dense(f"{p}.attention.self.{m}", HIDDEN, HIDDEN)
        dense(f"{p}.attention.output.dense", HIDDEN, HIDDEN)
        norm(f"{p}.attention.output.LayerNorm")
        dense(f"{p}.intermediate.dense", INTERMEDIATE, HIDDEN)
        dense(f"{p}.output.dense", HIDDEN, INTERMEDIATE)
        norm(f"{p}.output.LayerNorm")
    dense("bert.pooler.dense", HIDDEN, HIDDEN)
    dense("classifier", 1, HIDDEN)
    return w


def layer_norm(x, g, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * g + b


def gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def logit(w, ids, types):
    ids, types = np.array(ids), np.array(types)
    lin = lambda x, n: x @ w[f"{n}.weight"].T.astype(np.float64) + w[f"{n}.bias"]
    e = "bert.embeddings"
    x = (
        w[f"{e}.word_embeddings.weight"][ids]
        + w[f"{e}.position_embeddings.weight"][: len(ids)]
        + w[f"{e}.token_type_embeddings.weight"][types]
    ).astype(np.float64)
    x = layer_norm(x, w[f"{e}.LayerNorm.weight"], w[f"{e}.LayerNorm.bias"])
    dh = HIDDEN // HEADS
    for i in range(LAYERS):
        p = f"bert.encoder.layer.{i}"
        q, k, v = (lin(x, f"{p}.attention.self.{m}") for m in ("query", "key", "value"))
        heads = []
        for h in range(HEADS):
            s = slice(h * dh, (h + 1) * dh)
            scores = q[:, s] @ k[:, s].T / math.sqrt(dh)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            heads.append((scores / scores.sum(-1, keepdims=True)) @ v[:, s])
        a = lin(np.concatenate(heads, -1), f"{p}.attention.output.dense")
        x = layer_norm(a + x, w[f"{p}.attention.output.LayerNorm.weight"], w[f"{p}.attention.output.LayerNorm.bias"])
        f = lin(gelu(lin(x, f"{p}.intermediate.dense")), f"{p}.output.dense")
        x = layer_norm(f + x, w[f"{p}.output.LayerNorm.weight"], w[f"{p}.output.LayerNorm.bias"])
    pooled = np.tanh(lin(x[0], "bert.pooler.dense"))
    return float(lin(pooled, "classifier")[0])


def save_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def main(out):
    os.makedirs(out, exist_ok=True)
    config = {
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert",
        "vocab_size": len(VOCAB),
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "intermediate_size": INTERMEDIATE,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": MAX_POS,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": EPS,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        "id2label": {"0": "LABEL_0"},
        "label2id": {"LABEL_0": 0},
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    tok = tokenizer()
    tok.save(os.path.join(out, "tokenizer.json"))
    w = weights(np.random.default_rng(7))
    save_safetensors(os.path.join(out, "model.safetensors"), w)
    tok.enable_truncation(MAX_POS, strategy="longest_first")
    cases = []
    for query, doc in PAIRS:
        enc = tok.encode(query, doc)
        cases.append({
            "query": query,
            "document": doc,
            "ids": enc.ids,
            "type_ids": enc.type_ids,
            "logit": logit(w, enc.ids, enc.type_ids),
        })
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump({"max_length": MAX_POS, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
