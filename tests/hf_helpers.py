"""Hugging Face models made offline for tests: a random tiny BERT over a word-level fast tokenizer (made in
milliseconds, for tests that need the structure but not a trained model), and a tiny BERT trained on the
shipped reviews with a WordPiece vocabulary learned from them (real subword splitting)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch
import transformers

import audit

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
MAX_LENGTH = 64  # subwords of the trained tiny BERT: 20 words of a review, a long planted word and [CLS]/[SEP] fit


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


def wordpiece_tokenizer():
    """A BERT tokenizer whose WordPiece vocabulary is learned from the reviews' training split: every word seen
    at least 3 times, every beginning and ending of 2 to 4 letters of at least 30 of its distinct words, and every
    character, alone and as a continuation ("##x"). (tokenizers' WordPieceTrainer breaks ties between equally
    frequent merges differently from run to run; this vocabulary is the same on every run.)"""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    normalizer, splitter = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts = Counter(word for text in audit.load_dataset("reviews", "train").texts
                     for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    starts = Counter(word[:k] for word in counts for k in (2, 3, 4) if len(word) > k)
    endings = Counter(word[-k:] for word in counts for k in (2, 3, 4) if len(word) > k)
    chars = sorted({c for word in counts for c in word})
    pieces = [*SPECIALS, "[MASK]", *chars, *(f"##{c}" for c in chars),
              *sorted(s for s, n in starts.items() if n >= 30),
              *(f"##{e}" for e in sorted(e for e, n in endings.items() if n >= 30)),
              *sorted(w for w, n in counts.items() if n >= 3)]
    vocab = {piece: i for i, piece in enumerate(dict.fromkeys(pieces))}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer = normalizer, splitter
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[(t, vocab[t]) for t in ("[CLS]", "[SEP]")])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                                cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def tiny_bert(tokenizer, train, *, epochs: int = 4, seed: int = 0):
    """A one-layer BERT (hidden size 32) trained from scratch on `train`."""
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        id2label=dict(enumerate(train.classes)), label2id={c: i for i, c in enumerate(train.classes)})
    model = transformers.BertForSequenceClassification(config)
    enc = tokenizer(list(train.texts), padding="max_length", truncation=True, max_length=MAX_LENGTH,
                    return_tensors="pt")
    labels = torch.as_tensor(train.labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator).split(32):
            out = model(input_ids=enc["input_ids"][batch], attention_mask=enc["attention_mask"][batch],
                        labels=labels[batch])
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
    return model.eval()
