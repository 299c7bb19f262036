"""Masks at the frame's resolution from a model's low-resolution logits, fitted to the frame's edges.

SAM 2 predicts masks on a grid a quarter of its input's side (64 x 64 for ``sam2-compact``'s
256 px, 256 x 256 for SAM 2.1's 1024 px) and upsamples the logits bilinearly. On a 320 x 240
frame a cell of ``sam2-compact``'s grid is 5 x 3.75 pixels, so a small object's outline is a
smooth guess between cells: the ground truth itself, put on that grid and upsampled, reaches a
mean IoU of only 0.946 (docs/flows.md), and no weights can do better than their grid.

The frame knows where the outline is. A guided filter (He, Sun and Tang, "Guided Image
Filtering", 2013, here in its fast form) fits, in every window, the upsampled probabilities as a
linear function of the frame's colour, so the output keeps the model's decision inside and
outside the object and moves the transition to where the colour changes; where the frame has no
colour edge to follow, the bilinear mask stands. It has no weights and two settings (radius and
regulariser), chosen on synthetic videos no reported score uses (docs/models.md), and it runs on
the object's neighbourhood at the grid's resolution, so a frame costs milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.errors import ConfigError

# Probabilities below this are "certainly not the object": the filter runs on a window 2 radii
# beyond the pixels above it (as far as the filter reads), and the mask outside is empty.
_SUPPORT = 1e-3
_SUPPORT_LOGIT = float(np.log(_SUPPORT / (1 - _SUPPORT)))


@dataclass(frozen=True)
class MaskUpsampling:
    """How low-resolution logits become a mask at the frame's resolution.

    ``guided``: refine the bilinear upsampling with the frame as guide (else threshold it, as
    SAM 2 does). ``radius_cells``: the filter's radius in cells of the model's mask grid, so
    that it scales with the frame (16 px on a 320 x 240 frame under a 64-cell grid).
    ``eps``: the regulariser, in squared colour units (0-1 scale); below the variance of the
    frame's noise the filter follows noise, far above it the output stays bilinear.
    """

    guided: bool = True
    radius_cells: float = 3.2
    eps: float = 1e-3

    def __post_init__(self) -> None:
        if self.radius_cells <= 0 or self.eps <= 0:
            raise ConfigError(f"mask upsampling needs a positive radius and eps, got {self.radius_cells} and {self.eps}")

    @property
    def name(self) -> str:
        return f"guided(r={self.radius_cells:g} cells, eps={self.eps:g})" if self.guided else "bilinear"

    def radius_pixels(self, frame_size: tuple[int, int], grid: int) -> int:
        """The radius in pixels of a frame ``(height, width)`` under a ``grid``-cell mask."""
        return max(1, round(self.radius_cells * max(frame_size) / grid))

    @staticmethod
    def subsample(frame_size: tuple[int, int], grid: int) -> int:
        """How much coarser than the frame the filter fits its coefficients: one grid cell (of the longer side).

        The model's mask carries nothing finer than a cell, and the frame's edges come back
        when the coefficients are applied at full resolution; fitting them on a finer grid
        scored the same (docs/models.md) at up to 25 times the cost.
        """
        return max(1, int(max(frame_size) / grid))


BILINEAR = MaskUpsampling(guided=False)
GUIDED = MaskUpsampling()
UPSAMPLINGS = {"guided": GUIDED, "bilinear": BILINEAR}


def upsampling_named(name: str) -> MaskUpsampling:
    try:
        return UPSAMPLINGS[name]
    except KeyError:
        raise ConfigError(f"unknown mask upsampling {name!r}; known: {', '.join(UPSAMPLINGS)}") from None


def masks_from_logits(logits: np.ndarray, image: np.ndarray, grid: int, upsampling: MaskUpsampling) -> np.ndarray:
    """Boolean masks ``(k, h, w)`` from logits ``(k, h, w)`` already upsampled to ``image``'s size.

    ``image`` is the frame, ``(h, w, 3)`` uint8 RGB; ``grid`` the side of the model's mask grid.
    """
    logits = np.asarray(logits, dtype=np.float32)
    if not upsampling.guided:
        return logits > 0
    if logits.ndim != 3 or image.shape != (*logits.shape[1:], 3) or image.dtype != np.uint8:
        raise ConfigError(
            f"logits {logits.shape} and frame {image.dtype} {image.shape} do not match: "
            "need (k, h, w) logits and an (h, w, 3) uint8 RGB frame"
        )
    size = logits.shape[1:]
    radius, subsample = upsampling.radius_pixels(size, grid), upsampling.subsample(size, grid)
    masks = np.zeros(logits.shape, dtype=bool)
    for one, mask in zip(logits, masks):
        _guided_mask(one, image, radius, subsample, upsampling.eps, out=mask)
    return masks


def _guided_mask(logits: np.ndarray, image: np.ndarray, radius: int, subsample: int, eps: float, *, out: np.ndarray) -> None:
    rows = np.flatnonzero((logits > _SUPPORT_LOGIT).any(axis=1))
    if rows.size == 0:
        return
    cols = np.flatnonzero((logits > _SUPPORT_LOGIT).any(axis=0))
    # Two radii of margin: the output at a pixel reads coefficients fitted one radius further.
    # The window starts on the subsampling grid, so it fits what the whole frame would.
    margin = 2 * radius + 2 * subsample
    y0, y1 = max(0, rows[0] - margin) // subsample * subsample, min(logits.shape[0], rows[-1] + margin + 1)
    x0, x1 = max(0, cols[0] - margin) // subsample * subsample, min(logits.shape[1], cols[-1] + margin + 1)
    p = (1 / (1 + np.exp(-np.clip(logits[y0:y1, x0:x1], -30, 30)))).astype(np.float32)
    guide = image[y0:y1, x0:x1].astype(np.float32) * (1 / 255)
    filtered, weight = fast_guided_filter(guide, p, radius, eps, subsample)
    filtered -= p
    filtered *= weight
    filtered += p
    out[y0:y1, x0:x1] = filtered > 0.5


def fast_guided_filter(
    guide: np.ndarray, p: np.ndarray, radius: int, eps: float, subsample: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The guided filter of ``p`` (``(h, w)``) by ``guide`` (``(h, w, 3)``, 0-1), and where it holds.

    He and Sun's fast form ("Fast Guided Filter", 2015): the linear coefficients are fitted on a
    grid ``subsample`` times coarser and applied to the full-resolution guide, which keeps its
    edges, so a frame of any size costs about what the model's mask grid does. Returns the
    filtered ``p`` and a weight in [0, 1]: each window's share of colour variance above ``eps``.
    Where the frame has no colour to follow, the filter degenerates to a box blur of twice its
    radius, which would shrink a low-contrast object and erase one smaller than that; the
    caller keeps the bilinear probabilities there by that weight.
    """
    height, width = p.shape
    if subsample > 1:
        small = (-(-width // subsample), -(-height // subsample))
        guide_s = cv2.resize(guide, small, interpolation=cv2.INTER_AREA)
        p_s = cv2.resize(p, small, interpolation=cv2.INTER_AREA)
    else:
        guide_s, p_s = guide, p
    r = max(1, round(radius / subsample))
    a, b, spread = _coefficients(guide_s, p_s, r, eps)
    mean_a, mean_b, weight = _box(a, r), _box(b, r), _box(spread / (spread + eps), r)
    if subsample > 1:
        mean_a, mean_b, weight = (cv2.resize(x, (width, height), interpolation=cv2.INTER_LINEAR) for x in (mean_a, mean_b, weight))
    return np.einsum("hwc,hwc->hw", mean_a, guide) + mean_b, weight


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def _coefficients(guide: np.ndarray, p: np.ndarray, radius: int, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each window's linear fit ``p ~ a . colour + b`` (ridge ``eps``) and its total colour variance."""

    def box(x: np.ndarray) -> np.ndarray:
        return _box(x, radius)

    mean_i = box(guide)
    mean_p = box(p)
    cov_ip = box(guide * p[..., None]) - mean_i * mean_p[..., None]
    # The window's colour covariance (symmetric 3 x 3) plus eps, inverted in closed form: a
    # batched solve of this many 3 x 3 systems is several times slower.
    var = {}
    for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)):
        var[i, j] = box(guide[..., i] * guide[..., j]) - mean_i[..., i] * mean_i[..., j] + (eps if i == j else 0.0)
    rr, rg, rb, gg, gb, bb = (var[k] for k in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)))
    inv_rr, inv_rg, inv_rb = gg * bb - gb * gb, gb * rb - rg * bb, rg * gb - gg * rb
    inv_gg, inv_gb, inv_bb = rr * bb - rb * rb, rb * rg - rr * gb, rr * gg - rg * rg
    det = rr * inv_rr + rg * inv_rg + rb * inv_rb
    c_r, c_g, c_b = cov_ip[..., 0], cov_ip[..., 1], cov_ip[..., 2]
    a = np.stack(
        [
            inv_rr * c_r + inv_rg * c_g + inv_rb * c_b,
            inv_rg * c_r + inv_gg * c_g + inv_gb * c_b,
            inv_rb * c_r + inv_gb * c_g + inv_bb * c_b,
        ],
        axis=-1,
    ) / det[..., None]
    b = mean_p - (a * mean_i).sum(axis=-1)
    return a, b, rr + gg + bb - 3 * eps
