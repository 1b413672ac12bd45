"""The text pipeline shared by the text importers: tokenizer, vocabulary and encoder."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

#: Token at index 0, standing for every word not in the vocabulary.
UNK = "<unk>"

# The rules of torchtext's "basic_english" normaliser, applied in this order,
# so that vocabularies match those built with torchtext.
_NORMALISE = [
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"'", " '  "),
        (r'"', ""),
        (r"\.", " . "),
        (r"<br \/>", " "),
        (r",", " , "),
        (r"\(", " ( "),
        (r"\)", " ) "),
        (r"!", " ! "),
        (r"\?", " ? "),
        (r";", " "),
        (r":", " "),
        (r"\s+", " "),
    )
]


def tokenize(text: str) -> list[str]:
    """Split text into lower-case tokens like torchtext's ``basic_english`` tokenizer.

    ``' . , ( ) ! ?`` become tokens of their own, ``" ; :`` and ``<br />`` are dropped.

    Args:
        text: Any text.

    Returns:
        The tokens, in order.
    """
    text = text.lower()
    for pattern, replacement in _NORMALISE:
        text = pattern.sub(replacement, text)
    return text.split()


@dataclass
class Vocabulary:
    """Token list whose positions are the ids fed to a model; ``tokens[0]`` is :data:`UNK`.

    Attributes:
        tokens: The tokens, by id.
    """

    tokens: list[str]
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.tokens or self.tokens[0] != UNK:
            raise ValueError(f"a vocabulary must start with {UNK!r}, got {self.tokens[:1]}")
        self._ids = {token: i for i, token in enumerate(self.tokens)}
        if len(self._ids) != len(self.tokens):
            duplicates = sorted(token for token, n in Counter(self.tokens).items() if n > 1)
            raise ValueError(f"a vocabulary must not repeat tokens, found {duplicates}")

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 1, max_size: int | None = None) -> Vocabulary:
        """Build a vocabulary from texts, the same one for the same texts every time.

        Tokens are ordered by frequency, most frequent first, ties by the token
        itself, so ids never depend on hash order.

        Args:
            texts: The training texts.
            min_freq: Tokens seen fewer times are left out (and encode as :data:`UNK`).
            max_size: Largest number of entries, :data:`UNK` included; ``None`` for no limit.

        Returns:
            The vocabulary.

        Raises:
            ValueError: If ``min_freq < 1`` or ``max_size < 1``.
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be at least 1, got {min_freq}")
        if max_size is not None and max_size < 1:
            raise ValueError(f"max_size must be at least 1 (room for {UNK!r}), got {max_size}")
        counts = Counter(token for text in texts for token in tokenize(text))
        counts.pop(UNK, None)
        kept = sorted((token for token, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[: max_size - 1]
        return cls([UNK, *kept])

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> np.ndarray:
        """Turn text into token ids, unknown tokens becoming 0.

        Args:
            text: Any text.

        Returns:
            int64 ids, one per token.
        """
        return np.array([self._ids.get(token, 0) for token in tokenize(text)], dtype=np.int64)

    def to_json(self) -> str:
        """Serialise the vocabulary so it can be stored beside the encoded data."""
        return json.dumps({"tokens": self.tokens}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Vocabulary:
        """Rebuild a vocabulary from :meth:`to_json`'s output.

        Raises:
            ValueError: If ``text`` is not such output.
        """
        content = json.loads(text)
        if not isinstance(content, dict) or not isinstance(content.get("tokens"), list):
            raise ValueError('a vocabulary JSON must be an object with a "tokens" list')
        return cls(content["tokens"])


def encode_texts(texts: Iterable[str], vocab: Vocabulary) -> list[np.ndarray]:
    """Encode many texts into variable-length int64 id arrays with ``vocab``."""
    return [vocab.encode(text) for text in texts]
