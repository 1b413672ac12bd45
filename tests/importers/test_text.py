"""Tokenizer, vocabulary and encoder shared by the text importers."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_dm8.importers import UNK, Vocabulary, encode_texts, tokenize


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello, World!", ["hello", ",", "world", "!"]),
        ("It's (really) fine?", ["it", "'", "s", "(", "really", ")", "fine", "?"]),
        ('He said "no"; then: left.', ["he", "said", "no", "then", "left", "."]),
        ("line one<br />line\ttwo\n", ["line", "one", "line", "two"]),
        ("  ", []),
    ],
)
def test_tokenize_follows_basic_english(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_build_orders_by_frequency_then_token() -> None:
    vocab = Vocabulary.build(["b a c", "a b", "a d"])
    assert vocab.tokens == [UNK, "a", "b", "c", "d"]
    assert len(vocab) == 5


def test_build_applies_min_freq_and_max_size() -> None:
    texts = ["x y z", "x y", "x w"]
    assert Vocabulary.build(texts, min_freq=2).tokens == [UNK, "x", "y"]
    assert Vocabulary.build(texts, max_size=2).tokens == [UNK, "x"]
    assert Vocabulary.build(texts, max_size=1).tokens == [UNK]


def test_build_never_gives_unk_a_second_id() -> None:
    assert Vocabulary.build(["<unk> <unk> a"]).tokens == [UNK, "a"]


@pytest.mark.parametrize(("kwargs", "message"), [({"min_freq": 0}, "min_freq"), ({"max_size": 0}, "max_size")])
def test_build_rejects_bad_limits(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Vocabulary.build(["a"], **kwargs)


def test_encode_maps_unknown_tokens_to_zero() -> None:
    vocab = Vocabulary.build(["the cat sat", "the dog"])
    ids = vocab.encode("The bird sat.")
    assert ids.dtype == np.int64
    assert ids.tolist() == [vocab.tokens.index("the"), 0, vocab.tokens.index("sat"), 0]


def test_json_round_trip_keeps_ids() -> None:
    vocab = Vocabulary.build(["café au lait", "au revoir"])
    restored = Vocabulary.from_json(vocab.to_json())
    assert restored == vocab
    assert restored.encode("au café").tolist() == vocab.encode("au café").tolist()
    assert "café" in vocab.to_json()


@pytest.mark.parametrize("text", ["[1, 2]", '{"tokens": "abc"}', '{"words": []}'])
def test_from_json_rejects_other_json(text: str) -> None:
    with pytest.raises(ValueError, match="tokens"):
        Vocabulary.from_json(text)


@pytest.mark.parametrize(
    ("tokens", "message"),
    [([], "must start with"), (["a", UNK], "must start with"), ([UNK, "a", "a"], r"repeat tokens, found \['a'\]")],
)
def test_vocabulary_rejects_malformed_token_lists(tokens: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Vocabulary(tokens)


def test_encode_texts_gives_variable_length_arrays() -> None:
    vocab = Vocabulary.build(["a b c"])
    encoded = encode_texts(["a", "c b a", ""], vocab)
    assert [e.tolist() for e in encoded] == [[1], [3, 2, 1], []]
    assert all(e.dtype == np.int64 for e in encoded)
