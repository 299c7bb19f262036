"""Masks and RLE: byte-compatible with pycocotools, and the measures on them are exact."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from engine.errors import BadMaskError
from engine.masks import (
    Rle,
    area,
    bbox,
    decode,
    empty,
    encode,
    iou,
    iou_matrix,
    resize_mask,
    validate_mask,
)

# pycocotools 2.0.x decodes through an ``__array__`` without numpy 2's ``copy`` argument;
# numpy warns on every decode although the result is right.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


def random_masks(seed: int, count: int = 20) -> list[np.ndarray]:
    """Masks of odd sizes: noise, blobs, empty and full, the cases RLE code gets wrong."""
    rng = np.random.default_rng(seed)
    masks = []
    for i in range(count):
        h, w = int(rng.integers(1, 60)), int(rng.integers(1, 60))
        if i % 4 == 0:
            masks.append(rng.random((h, w)) < 0.5)
        elif i % 4 == 1:
            yy, xx = np.mgrid[:h, :w]
            masks.append((yy - h / 2) ** 2 + (xx - w / 3) ** 2 < (min(h, w) / 3) ** 2)
        elif i % 4 == 2:
            masks.append(np.zeros((h, w), bool))
        else:
            masks.append(np.ones((h, w), bool))
    return masks


def coco_counts(mask: np.ndarray) -> bytes:
    return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]


@pytest.mark.parametrize("mask", random_masks(0), ids=lambda m: f"{m.shape}")
def test_encode_matches_pycocotools_bytes_and_round_trips(mask: np.ndarray) -> None:
    rle = encode(mask)
    assert (rle.height, rle.width) == mask.shape
    assert rle.counts == coco_counts(mask)
    decoded = decode(rle)
    assert decoded.dtype == np.bool_ and decoded.shape == mask.shape
    np.testing.assert_array_equal(decoded, mask)
    assert encode(decoded) == rle


def test_rle_from_pycocotools_survives_decode_encode() -> None:
    for mask in random_masks(1):
        theirs = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
        rle = Rle.from_coco(theirs)
        assert encode(decode(rle)).counts == theirs["counts"]


def test_encode_treats_any_nonzero_as_foreground() -> None:
    values = np.array([[0, 1, 255], [0, 0.5, -1]])
    np.testing.assert_array_equal(decode(encode(values)), values != 0)
    assert encode(values.astype(np.uint8) * 7) == encode(values.astype(np.uint8) != 0)


def test_encode_accepts_non_contiguous_views() -> None:
    mask = random_masks(2)[0]
    view = np.ones((mask.shape[0] * 2, mask.shape[1]), bool)[::2]
    view[:] = mask
    assert encode(view) == encode(mask)
    assert encode(mask.T) == encode(np.ascontiguousarray(mask.T))


@pytest.mark.parametrize("bad", [np.zeros(5, bool), np.zeros((2, 2, 1), bool), [[0, 1]]])
def test_encode_rejects_non_2d(bad: object) -> None:
    with pytest.raises(BadMaskError, match="2-D"):
        encode(bad)  # type: ignore[arg-type]


def test_from_coco_accepts_str_bytes_and_uncompressed_counts() -> None:
    mask = random_masks(3)[1]
    rle = encode(mask)
    as_str = {"size": [rle.height, rle.width], "counts": rle.counts.decode("ascii")}
    as_bytes = {"size": [rle.height, rle.width], "counts": rle.counts}
    # Uncompressed: run lengths in column-major order, starting with a background run.
    flat = mask.ravel(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0, *runs]
    uncompressed = {"size": [rle.height, rle.width], "counts": runs}
    for obj in (as_str, as_bytes, uncompressed):
        assert Rle.from_coco(obj) == rle
    assert Rle.from_coco(rle.to_coco()) == rle


@pytest.mark.parametrize(
    "obj", [{}, {"size": [2, 2]}, {"counts": "0"}, {"size": ["a", 2], "counts": "0"}, {"size": [2, 2], "counts": 5}]
)
def test_from_coco_rejects_malformed(obj: dict) -> None:
    with pytest.raises(BadMaskError):
        Rle.from_coco(obj)


def test_empty_area_and_bbox_match_numpy() -> None:
    assert area(empty(4, 6)) == 0 and bbox(empty(4, 6)) == (0, 0, 0, 0)
    np.testing.assert_array_equal(decode(empty(4, 6)), np.zeros((4, 6), bool))
    for mask in random_masks(4):
        rle = encode(mask)
        assert area(rle) == int(mask.sum())
        if mask.any():
            ys, xs = np.nonzero(mask)
            expected = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
        else:
            expected = (0, 0, 0, 0)
        assert bbox(rle) == expected


def brute_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def test_iou_matches_brute_force() -> None:
    rng = np.random.default_rng(5)
    for _ in range(30):
        a, b = rng.random((2, 17, 23)) < rng.random((2, 1, 1))
        assert iou(encode(a), encode(b)) == pytest.approx(brute_iou(a, b), abs=1e-12)


def test_iou_of_empty_masks() -> None:
    blob = np.zeros((8, 8), bool)
    blob[2:5, 3:6] = True
    assert iou(empty(8, 8), empty(8, 8)) == 1.0
    assert iou(empty(8, 8), encode(blob)) == 0.0
    assert iou(encode(blob), encode(blob)) == 1.0


def test_iou_matrix_pairs_every_mask() -> None:
    rng = np.random.default_rng(6)
    masks = [rng.random((9, 11)) < p for p in (0.0, 0.2, 0.5, 0.9)]
    rles = [encode(m) for m in masks]
    matrix = iou_matrix(rles[:3], rles)
    assert matrix.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert matrix[i, j] == pytest.approx(brute_iou(masks[i], masks[j]), abs=1e-12)
    assert iou_matrix([], rles).shape == (0, 4)


def test_iou_refuses_masks_of_different_sizes() -> None:
    with pytest.raises(BadMaskError, match="different sizes"):
        iou(empty(4, 4), empty(4, 5))


def test_validate_mask_accepts_binary_masks() -> None:
    validate_mask(np.zeros((3, 4), bool), 3, 4)
    validate_mask(np.array([[0, 1], [1, 0]], np.uint8), 2, 2)
    validate_mask(np.array([[0.0, 1.0]]), 1, 2)


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (np.zeros((3, 4, 1), bool), "2-D"),
        (np.zeros(12, bool), "2-D"),
        (np.zeros((4, 3), bool), r"does not match the frame \(3, 4\)"),
        (np.full((3, 4), 255, np.uint8), "only 0 and 1"),
        (np.full((3, 4), np.nan), "only 0 and 1"),
        (np.zeros((3, 4), object), "dtype"),
        ([[0, 1]], "numpy array"),
    ],
)
def test_validate_mask_says_what_is_wrong(mask: object, message: str) -> None:
    with pytest.raises(BadMaskError, match=message):
        validate_mask(mask, 3, 4)


def test_resize_mask_is_nearest_neighbour_and_binary() -> None:
    mask = np.array([[1, 0], [0, 1]], bool)
    big = resize_mask(mask, 4, 4)
    assert big.dtype == np.bool_
    np.testing.assert_array_equal(big, np.kron(mask, np.ones((2, 2), bool)))
    np.testing.assert_array_equal(resize_mask(big, 2, 2), mask)
    assert resize_mask(mask.astype(np.uint8), 2, 2).dtype == np.bool_
    with pytest.raises(BadMaskError):
        resize_mask(mask, 0, 3)


def test_run_lengths_match_pycocotools_uncompressed_form() -> None:
    from pycocotools import mask as coco

    from engine.masks import run_lengths

    rng = np.random.default_rng(7)
    for _ in range(20):
        mask = rng.random((23, 31)) < rng.random()
        rle = encode(mask)
        runs = run_lengths(rle.counts)
        assert sum(runs) == 23 * 31
        rebuilt = coco.frPyObjects({"size": [23, 31], "counts": runs}, 23, 31)
        assert rebuilt["counts"] == rle.counts


@pytest.mark.parametrize("counts", ["0", "W`0", "\u00e9", "0000000000000000000000000000000000000000"])
def test_counts_that_do_not_cover_the_mask_are_refused(counts: str) -> None:
    from engine.errors import BadMaskError

    with pytest.raises(BadMaskError):
        Rle.from_coco({"size": [4, 4], "counts": counts})


def test_iou_matrix_handles_many_masks() -> None:
    from engine.masks import iou_matrix

    masks = [encode(np.eye(8, dtype=bool)) for _ in range(300)] + [encode(np.zeros((8, 8), bool))]
    matrix = iou_matrix(masks, masks[:2] + masks[-1:])
    assert matrix.shape == (301, 3)
    assert matrix[0, 0] == 1.0 and matrix[-1, -1] == 1.0 and matrix[0, -1] == 0.0
