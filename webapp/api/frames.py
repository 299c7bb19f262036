"""``/api/videos/{video_id}/frames/{index}``: a sampled frame's JPEG, by ids only.

The object key comes from the catalog's ``frames`` row, never from the URL, and the video id
must look like one (letters, digits, ``.``, ``_``, ``-``; no ``..``), so no URL can name a path.
Only admins, and users holding a task on the video, may read its frames.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from engine.errors import NotFoundError
from storage.schema import FrameRow
from webapp.api.deps import session_token, web

router = APIRouter(prefix="/api/videos", tags=["frames"])
VIDEO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@router.get("/{video_id}/frames/{index}")
def frame(video_id: str, index: int, request: Request) -> Response:
    app = web(request)
    if not VIDEO_ID.match(video_id) or ".." in video_id:
        raise NotFoundError(f"no video {video_id!r}: a video id is letters, digits, '.', '_' and '-'")
    app.work.video_reader(session_token(request), video_id)
    with app.catalog.read() as session:
        key = session.scalar(select(FrameRow.object_key).where(FrameRow.video_id == video_id, FrameRow.frame_index == index))
    if key is None:
        raise NotFoundError(f"video {video_id!r} has no frame {index}")
    return Response(app.store.get(key), media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
