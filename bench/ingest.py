"""Ingest throughput against plain OpenCV decode of the same file, measured in the same run.

Both sides are timed on every source frame of the file: the baseline decodes each frame with
``cv2.VideoCapture.read``; ingestion hashes the file, decodes, samples at 6 FPS, encodes
JPEGs, writes them to a local object store and commits the catalog rows. Runs alternate
(baseline, ingest, baseline, ...) so the shared machine's noise hits both alike.
Target: ingest at least 0.5x of raw decode throughput on the shared 720p videos.

    python bench/ingest.py [--repeats 3] [VIDEO ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import SHARED_VIDEOS, median, timed  # noqa: E402
from engine.ingest import ingest_file  # noqa: E402
from engine.settings import Settings  # noqa: E402
from storage.catalog import open_catalog  # noqa: E402
from storage.objects import LocalObjectStore  # noqa: E402
from storage.video_catalog import SqlVideoCatalog  # noqa: E402


def raw_decode(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while True:
        ok, _ = capture.read()
        if not ok:
            break
        count += 1
    capture.release()
    return count


def one_ingest(path: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        catalog = open_catalog(f"sqlite:///{tmp}/catalog.db")
        try:
            result = ingest_file(
                path, store=LocalObjectStore(Path(tmp) / "objects"), catalog=SqlVideoCatalog(catalog), settings=Settings()
            )
        finally:
            catalog.dispose()
        return result.frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    videos = args.videos or sorted(SHARED_VIDEOS.glob("*.mp4"))
    if not videos:
        sys.exit(f"no videos given and none at {SHARED_VIDEOS}")
    print(f"{'video':<16}{'frames':>7}{'sampled':>8}{'decode fps':>12}{'ingest fps':>12}{'stored/s':>10}{'ratio':>8}")
    ratios = []
    for path in videos:
        frames = raw_decode(path)  # warm the page cache and count
        raw, ours = [], []
        sampled = 0
        for _ in range(args.repeats):
            raw.append(timed(lambda: raw_decode(path)))
            box: list[int] = []
            ours.append(timed(lambda: box.append(one_ingest(path))))
            sampled = box[0]
        raw_fps, ingest_fps = frames / median(raw), frames / median(ours)
        ratios.append(ingest_fps / raw_fps)
        print(
            f"{path.stem:<16}{frames:>7}{sampled:>8}{raw_fps:>12.1f}{ingest_fps:>12.1f}"
            f"{sampled / median(ours):>10.1f}{ingest_fps / raw_fps:>8.2f}x"
        )
    worst = min(ratios)
    print(f"ingest / raw decode throughput: worst {worst:.2f}x, median {median(ratios):.2f}x (target >= 0.5x)"
          f" -> {'PASS' if worst >= 0.5 else 'MISS'}")


if __name__ == "__main__":
    main()
