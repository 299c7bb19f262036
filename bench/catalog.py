"""Catalog write throughput: 100,000 masklet-frame rows on SQLite and PostgreSQL, rows/s.

Writes 1,000 masklets of 100 frames each (real COCO RLEs of moving 720p blobs) through the
same repository function the engine uses (``storage.masklets.add_masklet``), 50 masklets per
transaction, into a fresh database per backend. PostgreSQL is skipped with a message when
the server on 127.0.0.1:5432 is not reachable.

    python bench/catalog.py [--rows 100000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.masklets import Masklet, MaskletSource  # noqa: E402
from engine.masks import encode  # noqa: E402
from engine.video import Frame, Video  # noqa: E402
from storage import masklets as masklet_queries  # noqa: E402
from storage import videos as video_queries  # noqa: E402
from storage.catalog import Catalog  # noqa: E402

FRAMES = 100
H, W = 720, 1280
PER_TRANSACTION = 50


def sample_masks() -> tuple:
    masks = []
    for i in range(FRAMES):
        m = np.zeros((H, W), bool)
        cy, cx = 200 + i, 300 + 4 * i
        yy, xx = np.ogrid[:H, :W]
        m[(yy - cy) ** 2 / 90**2 + (xx - cx) ** 2 / 140**2 <= 1] = True
        masks.append(encode(m))
    return tuple(masks)


def run(url: str, masklets: int, masks: tuple) -> float:
    catalog = Catalog(url)
    catalog.upgrade()
    video = Video("bench", "bench", "bench", W, H, 24.0, FRAMES * 4, FRAMES / 6, 6.0, FRAMES)
    frames = [Frame("bench", i, 4 * i, i / 6, f"k/{i}") for i in range(FRAMES)]
    with catalog.write() as session:
        video_queries.add_video(session, video, frames, [0] * FRAMES)
    template = Masklet("bench", 0, MaskletSource.MANUAL, masks)
    start = time.perf_counter()
    for first in range(0, masklets, PER_TRANSACTION):
        with catalog.write() as session:
            for object_id in range(first, min(first + PER_TRANSACTION, masklets)):
                masklet = Masklet("bench", object_id, MaskletSource.MANUAL, masks, areas=template.areas)
                masklet_queries.add_masklet(session, masklet, status="satisfactory")
    elapsed = time.perf_counter() - start
    catalog.dispose()
    return masklets * FRAMES / elapsed


def postgres_database(admin_url: str):  # type: ignore[no-untyped-def]
    import psycopg

    name = f"dataengine_bench_{uuid.uuid4().hex[:10]}"
    conn = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    conn.execute(f'CREATE DATABASE "{name}"')
    return conn, name, admin_url.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    masklets = max(1, args.rows // FRAMES)
    masks = sample_masks()
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        rate = run(f"sqlite:///{tmp}/catalog.db", masklets, masks)
        print(f"sqlite      {masklets * FRAMES:>8} masklet-frame rows  {rate:>10,.0f} rows/s")
    try:
        conn, name, url = postgres_database(args.postgres)
    except Exception as exc:  # noqa: BLE001
        print(f"postgresql  skipped: {args.postgres} not reachable ({exc.__class__.__name__})")
        return
    try:
        rate = run(url, masklets, masks)
        print(f"postgresql  {masklets * FRAMES:>8} masklet-frame rows  {rate:>10,.0f} rows/s")
    finally:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


if __name__ == "__main__":
    main()
