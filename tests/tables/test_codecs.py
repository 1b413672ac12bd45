"""Feature codecs: inference from a first sample, encoding to one stored value and back, and what they refuse."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from lightning_dm8 import InvalidInputError
from lightning_dm8.tables.codecs import (
    FeatureCodec,
    as_numpy,
    infer_codec,
    infer_varlen_codec,
    label_kind_of,
)


@pytest.mark.parametrize(
    ("sample", "codec"),
    [
        (np.zeros((3, 32, 32), np.uint8), FeatureCodec("array", "|u1", (3, 32, 32))),
        (np.zeros(4, ">f4"), FeatureCodec("array", "<f4", (4,))),
        (np.zeros((2, 2), bool), FeatureCodec("array", "|b1", (2, 2))),
        (np.float64(1.5), FeatureCodec("array", "<f8", ())),
        ([1, 2, 3], FeatureCodec("array", "<i8", (3,))),
        (torch.zeros(2, 5, dtype=torch.int16), FeatureCodec("array", "<i2", (2, 5))),
        ("text", FeatureCodec("text")),
        (b"raw", FeatureCodec("bytes")),
        (bytearray(b"raw"), FeatureCodec("bytes")),
    ],
    ids=["uint8", "big-endian", "bool", "scalar", "list", "tensor", "str", "bytes", "bytearray"],
)
def test_infer_codec(sample: Any, codec: FeatureCodec) -> None:
    assert infer_codec(sample) == codec


@pytest.mark.parametrize(
    ("sample", "dtype"),
    [(np.array(["a"]), "<U1"), (np.zeros(2, complex), "complex128"), (np.array([None, 1]), "object")],
)
def test_unsupported_feature_dtypes(sample: Any, dtype: str) -> None:
    with pytest.raises(InvalidInputError, match=rf"features of dtype {dtype} cannot be stored; use a numeric dtype"):
        infer_codec(sample)


def test_varlen_codec_is_canonical() -> None:
    assert infer_varlen_codec([np.zeros(3, ">i8"), np.zeros(1, ">i8")]) == FeatureCodec("varlen", "<i8")


CODECS_AND_SAMPLES = [
    (FeatureCodec("array", "|u1", (2, 3)), np.arange(6, dtype=np.uint8).reshape(2, 3)),
    (FeatureCodec("array", "<f8", (2,)), np.array([np.pi, -0.0])),
    (FeatureCodec("array", "<i4", (3,)), np.array([1, -2, 3], ">i4")),
    (FeatureCodec("varlen", "<i8"), np.array([2**62, -1, 0], np.int64)),
    (FeatureCodec("varlen", "<i8"), np.zeros(0, np.int64)),
    (FeatureCodec("varlen", "<i4"), np.array([7, -7], ">i4")),
    (FeatureCodec("text"), "数据 😀"),
    (FeatureCodec("bytes"), b"\x00\xff"),
]


@pytest.mark.parametrize(("codec", "sample"), CODECS_AND_SAMPLES)
def test_encode_decode_round_trip(codec: FeatureCodec, sample: Any) -> None:
    stored = codec.encode(sample)
    decoded = codec.decode_one(stored)
    if isinstance(sample, np.ndarray):
        assert isinstance(stored, bytes) and stored == sample.astype(codec.np_dtype).tobytes()
        assert decoded.dtype == codec.np_dtype and decoded.tolist() == sample.tolist()
        assert decoded.flags.writeable
    else:
        assert stored == sample and decoded == sample


def test_numeric_codec_reads_back_float32() -> None:
    codec = FeatureCodec("numeric", columns=("a", "b", "c"))
    assert codec.encode(np.array([1, 2.5, -3])) == (1.0, 2.5, -3.0)
    decoded = codec.decode_one((1.0, 2.5, -3.0))
    assert decoded.dtype == np.float32 and decoded.tolist() == [1.0, 2.5, -3.0]


@pytest.mark.parametrize(
    ("codec", "sample", "message"),
    [
        (FeatureCodec("array", "|u1", (2, 3)), np.zeros((3, 2)), r"sample of shape \(3, 2\) does not match the "
                                                                r"dataset's shape \(2, 3\)"),
        (FeatureCodec("varlen", "<i8"), np.zeros((2, 2), np.int64), r"variable-length features must be 1-D arrays of "
                                                                   r"int64; got shape \(2, 2\) of int64"),
        (FeatureCodec("varlen", "<i8"), np.zeros(2, np.int32),
         r"must be 1-D arrays of int64; got shape \(2,\) of int32"),
        (FeatureCodec("text"), b"bytes", r"text features must be str; got bytes"),
        (FeatureCodec("bytes"), "text", r"bytes features must be bytes; got str"),
        (FeatureCodec("numeric", columns=("a", "b")), [1.0, 2.0, 3.0], r"expected 2 numeric features, got 3"),
        (FeatureCodec("numeric", columns=("a", "b")), (1.0, None),
         r"numeric features must be numbers; got \(1.0, None\)"),
    ],
    ids=["shape", "varlen-ndim", "varlen-dtype", "text", "bytes", "numeric-count", "numeric-null"],
)
def test_encode_refuses(codec: FeatureCodec, sample: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        codec.encode(sample)


@pytest.mark.parametrize(
    "codec",
    [FeatureCodec("array", "<f4", (100, 100, 3)), FeatureCodec("varlen", "<i8"), FeatureCodec("text"),
     FeatureCodec("bytes"), FeatureCodec("numeric", columns=("x", "数"))],
)
def test_json_round_trip(codec: FeatureCodec) -> None:
    assert FeatureCodec.from_json(codec.to_json()) == codec


def test_fixed_size() -> None:
    assert FeatureCodec("array", "|u1", (3, 32, 32)).fixed_size == 3072
    assert FeatureCodec("array", "<f4", (100, 100, 3)).fixed_size == 120_000
    assert FeatureCodec("array", "<f8", ()).fixed_size == 8
    assert FeatureCodec("varlen", "<i8").fixed_size is None
    assert FeatureCodec("bytes").fixed_size is None


@pytest.mark.parametrize(
    ("labels", "kind"),
    [(None, "none"), (np.array([1, 2]), "int"), (np.array([True]), "int"), (np.array([1], np.uint8), "int"),
     (np.array([0.5]), "float"), (np.array([1], np.float16), "float")],
)
def test_label_kind(labels: np.ndarray | None, kind: str) -> None:
    assert label_kind_of(labels) == kind


def test_label_kind_refuses_text() -> None:
    with pytest.raises(InvalidInputError, match=r"labels of dtype <U3 cannot be stored"):
        label_kind_of(np.array(["cat"]))


def test_as_numpy() -> None:
    tensor = torch.arange(3, requires_grad=False, dtype=torch.float32).requires_grad_()
    assert isinstance(as_numpy(tensor), np.ndarray) and as_numpy(tensor).tolist() == [0.0, 1.0, 2.0]
    array = np.zeros(2)
    assert as_numpy(array) is array
    assert as_numpy("text") == "text"
