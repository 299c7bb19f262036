"""Binary masks and their compact form, COCO run-length encoding (RLE).

Masks cross module boundaries as :class:`Rle` values, byte-compatible with the RLEs in SA-V
and COCO files (pycocotools' compressed ``counts`` string), so a mask read from an SA-V file
and written back is the same bytes. Decoded masks are ``numpy`` boolean arrays of shape
``(height, width)``.

The heavy lifting is pycocotools' C code; the wrappers here only check shapes and avoid
needless copies, so that using them costs about the same as calling pycocotools directly
(``bench/rle.py`` measures it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as coco_mask

from engine.errors import BadMaskError


@dataclass(frozen=True, slots=True)
class Rle:
    """One mask in COCO compressed RLE: its size and pycocotools' ``counts`` bytes."""

    height: int
    width: int
    counts: bytes

    def to_coco(self) -> dict[str, Any]:
        """The JSON form used by SA-V and COCO files: ``{"size": [h, w], "counts": str}``."""
        return {"size": [self.height, self.width], "counts": self.counts.decode("ascii")}

    @classmethod
    def from_coco(cls, obj: dict[str, Any]) -> Rle:
        """Parse the JSON form; raises BadMaskError on anything else."""
        try:
            height, width = (int(v) for v in obj["size"])
            counts = obj["counts"]
        except (KeyError, TypeError, ValueError) as exc:
            raise BadMaskError(f"not a COCO RLE object (need size=[h, w] and counts): {obj!r:.120}") from exc
        if height < 0 or width < 0:
            raise BadMaskError(f"not a COCO RLE object (negative size): {obj!r:.120}")
        if isinstance(counts, list):
            if any(not isinstance(c, int) or c < 0 for c in counts) or sum(counts) != height * width:
                raise BadMaskError(f"uncompressed RLE runs do not cover {height}x{width} pixels")
            # Uncompressed RLE (a list of run lengths): convert to the compressed form.
            compressed = coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
            counts = compressed["counts"]
        if isinstance(counts, str):
            try:
                counts = counts.encode("ascii")
            except UnicodeEncodeError as exc:
                raise BadMaskError("RLE counts must be ASCII (COCO compressed RLE)") from exc
        if not isinstance(counts, bytes):
            raise BadMaskError(f"not a COCO RLE object: {obj!r:.120}")
        # Masks read from files are untrusted: pycocotools decodes without bounds checks.
        check_counts(counts, height, width)
        return cls(height, width, counts)

    def to_pycocotools(self) -> dict[str, Any]:
        return {"size": [self.height, self.width], "counts": self.counts}


def run_lengths(counts: bytes) -> list[int]:
    """The run lengths encoded in COCO's compressed ``counts`` (LEB128-like, 6 bits per character).

    Runs from the third on are stored as differences to the run two before, as pycocotools does.
    """
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(counts):
                raise BadMaskError("RLE counts end in the middle of a run")
            char = counts[position] - 48
            if not 0 <= char < 64:
                raise BadMaskError(f"RLE counts hold an invalid character {chr(counts[position])!r}")
            value |= (char & 0x1F) << shift
            more = bool(char & 0x20)
            position += 1
            shift += 5
            if not more and char & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def check_counts(counts: bytes, height: int, width: int) -> None:
    """Refuse ``counts`` whose runs are negative or do not cover exactly ``height x width`` pixels."""
    runs = run_lengths(counts)
    if any(r < 0 for r in runs) or sum(runs) != height * width:
        raise BadMaskError(
            f"RLE runs cover {sum(runs)} pixels (or are negative), a {height}x{width} mask has {height * width}"
        )


def encode(mask: np.ndarray) -> Rle:
    """Encode a 2-D boolean mask (any other dtype: nonzero is foreground)."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        shape = getattr(mask, "shape", None)
        raise BadMaskError(f"a mask must be a 2-D array, got shape {shape}")
    if mask.dtype != np.bool_:
        mask = mask != 0
    # pycocotools wants column-major uint8; a bool array reinterpreted as uint8 needs no
    # cast, so the transposing copy is the only pass over the pixels.
    rle = coco_mask.encode(np.asfortranarray(mask.view(np.uint8)))
    return Rle(mask.shape[0], mask.shape[1], rle["counts"])


def decode(rle: Rle) -> np.ndarray:
    """Decode to a boolean array of shape ``(height, width)`` (column-major in memory)."""
    # pycocotools writes only 0 and 1, so reading its bytes as bool is exact and free.
    return coco_mask.decode(rle.to_pycocotools()).view(np.bool_)


def empty(height: int, width: int) -> Rle:
    """The empty mask of a frame (a valid answer: the object is not visible)."""
    return encode(np.zeros((height, width), dtype=bool))


def area(rle: Rle) -> int:
    """Number of foreground pixels."""
    return int(coco_mask.area(rle.to_pycocotools()))


def bbox(rle: Rle) -> tuple[int, int, int, int]:
    """The tight box ``(x, y, w, h)`` around the foreground, as COCO writes it; all zeros if empty."""
    x, y, w, h = coco_mask.toBbox(rle.to_pycocotools())
    return int(x), int(y), int(w), int(h)


def iou(a: Rle, b: Rle) -> float:
    """Intersection over union of two masks of one frame; 1.0 when both are empty.

    Both-empty counts as a perfect match (as in SA-V/DAVIS scoring): predicting "not
    visible" for an invisible object is right. pycocotools alone would say 0.
    """
    return float(iou_matrix([a], [b])[0, 0])


def iou_matrix(a: Sequence[Rle], b: Sequence[Rle]) -> np.ndarray:
    """IoU of every mask in ``a`` with every mask in ``b``, shape ``(len(a), len(b))``.

    One C call for all pairs, for matching masklets to each other; same conventions as :func:`iou`.
    """
    _check_same_size([*a, *b])
    if not a or not b:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    coco_a = [r.to_pycocotools() for r in a]
    coco_b = [r.to_pycocotools() for r in b]
    matrix = np.asarray(coco_mask.iou(coco_a, coco_b, [0] * len(b)), dtype=np.float64).reshape(len(a), len(b))
    empty_a = _areas(coco_a) == 0
    empty_b = _areas(coco_b) == 0
    matrix[np.outer(empty_a, empty_b)] = 1.0
    return matrix


AREA_CHUNK = 255  # pycocotools 2.0.11's area() overflows a uint8 count with 256 or more masks


def _areas(coco: list[dict[str, Any]]) -> np.ndarray:
    """Areas of many masks, asked of pycocotools in chunks it can count."""
    return np.concatenate(
        [np.asarray(coco_mask.area(coco[i : i + AREA_CHUNK])) for i in range(0, len(coco), AREA_CHUNK)]
    )


def validate_mask(mask: object, height: int, width: int) -> None:
    """Raise BadMaskError unless ``mask`` is a binary 2-D array of shape ``(height, width)``.

    For checking masks that come from outside (a model, an annotator, a file) before they are
    encoded: :func:`encode` itself accepts any nonzero value as foreground.
    """
    if not isinstance(mask, np.ndarray):
        raise BadMaskError(f"a mask must be a numpy array, got {type(mask).__name__}")
    if mask.ndim != 2:
        raise BadMaskError(
            f"a mask must be 2-D (height, width), got shape {mask.shape}; "
            "squeeze away channel or batch axes first"
        )
    if mask.shape != (height, width):
        raise BadMaskError(
            f"mask shape {mask.shape} does not match the frame ({height}, {width}); resize it to the frame first"
        )
    if mask.dtype == np.bool_:
        return
    if not (np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating)):
        raise BadMaskError(f"a mask must be boolean or numeric, got dtype {mask.dtype}")
    stray = mask[(mask != 0) & (mask != 1)]
    if stray.size:
        raise BadMaskError(
            f"a mask must hold only 0 and 1, found {stray.flat[0]!r} ({stray.size} such pixels); "
            "threshold it (e.g. mask > 0) first"
        )


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a binary mask to ``(height, width)`` by nearest neighbour, keeping it binary."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise BadMaskError(f"a mask must be a 2-D array, got shape {getattr(mask, 'shape', None)}")
    if height <= 0 or width <= 0:
        raise BadMaskError(f"cannot resize a mask to {height}x{width}")
    if mask.shape == (height, width):
        return mask if mask.dtype == np.bool_ else mask != 0
    source = np.ascontiguousarray(mask if mask.dtype == np.bool_ else mask != 0).view(np.uint8)
    # INTER_NEAREST_EXACT samples pixel centres (like PIL); plain INTER_NEAREST is off by half a pixel.
    resized = cv2.resize(source, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    return resized.view(np.bool_)


def _check_same_size(rles: Sequence[Rle]) -> None:
    sizes = {(r.height, r.width) for r in rles}
    if len(sizes) > 1:
        raise BadMaskError(f"masks of different sizes cannot be compared: {sorted(sizes)}")
