"""Ingestion sources listed video by video: folders, files, S3 prefixes, and what cannot be listed."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.settings import load_settings
from storage.source_listing import list_video_sources


def test_sources_list_each_video_once_and_report_what_cannot_be_listed(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("b.mp4", "a.MOV", "notes.txt", "c.json"):
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    listed = list_video_sources([str(folder), str(folder / "b.mp4"), str(tmp_path / "missing")], load_settings())
    assert listed.videos == (str((folder / "a.MOV").resolve()), str((folder / "b.mp4").resolve()))
    ((source, error),) = listed.unreadable
    assert source == str(tmp_path / "missing") and "no such file or folder" in error


@pytest.mark.s3
def test_an_s3_prefix_lists_its_video_objects(s3_server: str, s3_bucket: str, s3_admin) -> None:  # noqa: ANN001
    for key in ("in/a.mp4", "in/a.json", "in/deeper/b.mp4", "elsewhere/c.mp4"):
        s3_admin.put_object(Bucket=s3_bucket, Key=key, Body=b"x")
    settings = load_settings(s3_endpoint_url=s3_server)
    listed = list_video_sources([f"s3://{s3_bucket}/in", f"s3://{s3_bucket}/elsewhere/c.mp4"], settings)
    assert listed.videos == (
        f"s3://{s3_bucket}/in/a.mp4",
        f"s3://{s3_bucket}/in/deeper/b.mp4",
        f"s3://{s3_bucket}/elsewhere/c.mp4",
    )
    missing = list_video_sources(["s3://no-such-bucket-here/x"], settings)
    assert missing.videos == () and len(missing.unreadable) == 1
