"""The example models, the CIFAR augmentation and the text collate function, without a database."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from examples.agnews_text.collate import collate_batch
from examples.agnews_text.model import TextClassificationModel
from examples.cifar10_resnet20.model import ResNet20
from examples.cifar10_resnet20.transforms import RandomCropFlip, random_crop_flip
from lightning_dm8 import write_arrays


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnet20_has_twenty_layers_and_0_27m_parameters() -> None:
    model = ResNet20()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) + len(linears) == 20  # 1 stem conv + 3 stages x 3 blocks x 2 convs + the classifier
    assert n_params(model) == 269_722  # option A shortcuts add no parameters
    assert n_params(model) == pytest.approx(0.27e6, rel=0.01)
    projection = ResNet20(shortcut="B")
    assert n_params(projection) - n_params(model) == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64  # two 1x1 convs + BN


def test_resnet20_takes_uint8_images_and_normalises_them_itself() -> None:
    torch.manual_seed(0)
    model = ResNet20().eval()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        logits = model(images)
        assert logits.shape == (4, 10)
        torch.testing.assert_close(model(images.float()), logits)
        # An image at the CIFAR-10 mean is all zeros after normalisation, so the stem sees exactly zero input.
        seen = []
        handle = model.stem.register_forward_hook(lambda m, args, out: seen.append(args[0]))
        model(model.mean.expand(1, 3, 32, 32).clone())
        handle.remove()
    assert seen[0].abs().max() < 1e-5
    with torch.no_grad():
        assert model.stages(model.stem(images.float())).shape == (4, 64, 8, 8)


def test_resnet20_rejects_an_unknown_shortcut() -> None:
    with pytest.raises(ValueError, match="shortcut must be 'A'"):
        ResNet20(shortcut="C")


def test_collate_batch_flattens_token_ids_with_offsets() -> None:
    samples = [(np.array([4, 8, 15]), 2), (np.array([], dtype=np.int64), 0), (torch.tensor([16, 23, 42, 7, 1]), 3)]
    text, offsets, labels = collate_batch(samples)
    assert text.dtype == offsets.dtype == labels.dtype == torch.int64
    assert text.tolist() == [4, 8, 15, 16, 23, 42, 7, 1]
    assert offsets.tolist() == [0, 3, 3]
    assert labels.tolist() == [2, 0, 3]
    bag = nn.EmbeddingBag(50, 6, mode="mean")
    assert bag(text, offsets).shape == (3, 6)
    # the same samples as numpy arrays (the in-memory path) and as tensors (the database path) collate alike
    as_tensors = collate_batch([(torch.as_tensor(t), y) for t, y in samples])
    for a, b in zip(as_tensors, (text, offsets, labels), strict=True):
        assert torch.equal(a, b)


def test_collate_batch_without_labels_gives_text_and_offsets() -> None:
    text, offsets = collate_batch([np.array([1, 2]), np.array([3])])
    assert text.tolist() == [1, 2, 3] and offsets.tolist() == [0, 2]


@pytest.mark.parametrize("shape", [(3, 32, 32), (28, 28)])
def test_random_crop_flip_keeps_shape_and_dtype_and_only_moves_pixels(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(1, 256, shape, dtype=np.uint8)  # no zeros, so padding shows as zeros
    transform = RandomCropFlip(seed=3)
    padded = np.pad(image, [(0, 0)] * (len(shape) - 2) + [(4, 4), (4, 4)])
    h, w = shape[-2:]
    flips = 0
    for _ in range(40):
        out = transform(image)
        assert out.shape == image.shape and out.dtype == np.uint8 and out.flags.c_contiguous
        windows = [padded[..., i : i + h, j : j + w] for i in range(9) for j in range(9)]
        unflipped = any(np.array_equal(out, win) for win in windows)
        flipped = any(np.array_equal(out[..., ::-1], win) for win in windows)
        assert unflipped or flipped, "the output is not a crop of the zero-padded image (or its mirror)"
        flips += flipped and not unflipped
    assert 5 < flips < 35  # horizontal flips about half of the time


def test_random_crop_flip_is_reproducible_from_torch_seed() -> None:
    image = np.arange(3 * 32 * 32, dtype=np.uint8).reshape(3, 32, 32)

    def sequence(seed: int) -> list[np.ndarray]:
        torch.manual_seed(seed)
        return [random_crop_flip(image) for _ in range(8)]

    first, other, again = sequence(0), sequence(1), sequence(0)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    assert random_crop_flip(torch.from_numpy(image)).shape == (3, 32, 32)  # a tensor sample works too
    fixed = [RandomCropFlip(seed=7)(image) for _ in range(2)], [RandomCropFlip(seed=7)(image) for _ in range(2)]
    assert all(np.array_equal(a, b) for a, b in zip(*fixed, strict=True))


class _SameImage(Dataset):
    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> np.ndarray:
        return random_crop_flip(np.arange(3 * 32 * 32, dtype=np.uint8).reshape(3, 32, 32))


@pytest.mark.slow
def test_random_crop_flip_differs_between_workers_and_repeats_with_the_seed() -> None:
    def run() -> list[torch.Tensor]:
        torch.manual_seed(0)
        return list(DataLoader(_SameImage(), batch_size=8, num_workers=2))  # worker 0: batch 0, worker 1: batch 1

    first, second = run(), run()
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[0], first[1])  # the two workers draw different crops from the same images


def test_text_model_sizes_its_embedding_from_the_vocabulary_table(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    write_arrays(url, "toy_vocab", ["<unk>", "good", "bad", "film"], None, progress=False)
    model = TextClassificationModel(num_classes=2, vocab_table="toy_vocab", vocab_url=url)
    assert model.embedding is None
    model.configure_model()
    assert model.embedding.weight.shape == (4, 64)
    assert model.hparams.vocab_size == 4  # stored with checkpoints, so they load without the database
    logits = model(*collate_batch([(np.array([1, 3]), 1), (np.array([2]), 0)])[:2])
    assert logits.shape == (2, 2)


def test_text_model_keeps_passwords_out_of_its_hyperparameters() -> None:
    model = TextClassificationModel(vocab_size=10, vocab_url="mysql+pymysql://root:secret@127.0.0.1:1/test")
    assert "secret" not in str(dict(model.hparams))
    assert model.hparams.vocab_url == "mysql+pymysql://root@127.0.0.1:1/test"


def test_text_model_without_a_vocabulary_source_says_what_to_give() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        TextClassificationModel().configure_model()


def test_predict_step_returns_logits_with_or_without_labels() -> None:
    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    resnet = ResNet20().eval()
    with torch.no_grad():
        expected = resnet(images)
        torch.testing.assert_close(resnet.predict_step((images, torch.tensor([1, 2])), 0), expected)
        torch.testing.assert_close(resnet.predict_step(images, 0), expected)
        text = TextClassificationModel(num_classes=3, vocab_size=9).eval()
        batch = collate_batch([(np.array([1, 2]), 0), (np.array([5]), 2)])
        assert text.predict_step(batch, 0).shape == (2, 3)
        torch.testing.assert_close(text.predict_step(batch[:2], 0), text.predict_step(batch, 0))
