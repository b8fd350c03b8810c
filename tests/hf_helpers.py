"""A random tiny BERT and a word-level fast tokenizer, made offline in milliseconds, for tests that need a
Hugging Face model's structure (subword tokenizer, attention mask, padding) but not a trained one."""

from __future__ import annotations

import numpy as np
import torch
import transformers

import audit

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


def word_tokenizer(words: int = 50, max_length: int = 32):
    """A fast BERT-style tokenizer over the words w0 ... w{words-1}: [CLS] w.. [SEP], [UNK] for anything else."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate([*SPECIALS, *(f"w{i}" for i in range(words))])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                                cls_token="[CLS]", sep_token="[SEP]", model_max_length=max_length)


def random_bert(*, words: int = 50, max_length: int = 32, hidden: int = 16, seed: int = 0) -> audit.Model:
    """A one-layer BERT with random weights over `word_tokenizer`'s words, classes "a" and "b"."""
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=words + len(SPECIALS), hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=max_length, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, id2label={0: "a", 1: "b"}, label2id={"a": 0, "b": 1})
    return audit.from_transformers(transformers.BertForSequenceClassification(config).eval(),
                                   word_tokenizer(words, max_length))


def word_texts(rows: int, *, words: int = 50, seed: int = 0) -> audit.Dataset:
    """`rows` texts of 5 to 19 random words of `word_tokenizer`, random labels "a" and "b"."""
    rng = np.random.default_rng(seed)
    return audit.Dataset.from_arrays([" ".join(f"w{i}" for i in rng.integers(0, words, rng.integers(5, 20)))
                                      for _ in range(rows)], rng.integers(0, 2, rows), classes=["a", "b"])
