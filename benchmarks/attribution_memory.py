"""Peak memory of Integrated Gradients on a BERT-size text model, with and without the activation bound.

A 6-layer BERT (hidden 768, 12 heads, random weights) over texts of 254 words (256 subwords with
[CLS]/[SEP]). Each setting runs in its own process and prints its peak resident memory, its time and
the rows of its largest forward pass; "unbounded" is the sizing before `audit.methods.memory.PASS_BYTES`
(passes of up to 4096 rows: every example's steps in one pass here). Keep texts x steps small for the
unbounded runs: they need about 50 MB per row.

    PYTHONPATH=$PWD python benchmarks/attribution_memory.py [--texts 4] [--steps 8 50]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

LAYERS, HIDDEN, HEADS, WORDS, LENGTH = 6, 768, 12, 2000, 256


def bert_model():
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    import audit

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *(f"w{i}" for i in range(WORDS))])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                                     cls_token="[CLS]", sep_token="[SEP]", model_max_length=LENGTH)
    torch = __import__("torch")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                                     num_attention_heads=HEADS, intermediate_size=4 * HIDDEN,
                                     max_position_embeddings=LENGTH, id2label={0: "neg", 1: "pos"},
                                     label2id={"neg": 0, "pos": 1})
    return audit.from_transformers(transformers.BertForSequenceClassification(config).eval(), tokenizer)


def one(texts: int, steps: int, bounded: bool) -> None:
    import numpy as np
    import torch

    import audit
    from audit.methods import memory
    from audit.methods.attributions.explain import explain

    torch.set_num_threads(1)
    model = bert_model()
    rng = np.random.default_rng(0)
    data = audit.Dataset.from_arrays([" ".join(f"w{i}" for i in rng.integers(0, WORDS, LENGTH - 2))
                                      for _ in range(texts)], np.zeros(texts, dtype=int), classes=["neg", "pos"])
    if not bounded:
        memory.PASS_BYTES = 2**62
    per_row = memory.activation_bytes(model, model.encode(data), backward=True)
    passes: list[int] = []
    model.module.register_forward_pre_hook(lambda m, args: passes.append(len(args[0])))
    start = time.perf_counter()
    explain(model, data, "integrated_gradients", n_steps=steps)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'bounded' if bounded else 'unbounded':>9}  texts {texts}  steps {steps:3d}  largest pass "
          f"{max(passes):4d} rows  saved/row {per_row / 2**20:5.1f} MB  peak RSS {peak:7.0f} MB  {seconds:6.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=4)
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 50])
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(int(args.one[0]), int(args.one[1]), args.one[2] == "1")
        return
    for steps in args.steps:
        for bounded in (False, True):
            subprocess.run([sys.executable, __file__, "--one", str(args.texts), str(steps), str(int(bounded))],
                           check=True)


if __name__ == "__main__":
    main()
