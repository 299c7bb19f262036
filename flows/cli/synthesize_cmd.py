"""``dataengine synthesize``: write seeded synthetic videos with their ground-truth SA-V JSON."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from engine.errors import DataEngineError
from engine.synthetic import DEFAULT_SPEC, SyntheticVideo, synthesize


def register(app: typer.Typer) -> None:
    """Add the ``synthesize`` command to ``app``."""
    app.command("synthesize")(synthesize_command)


def synthesize_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for {video_id}.mp4 and {video_id}.json.")],
    videos: Annotated[int, typer.Option(help="How many videos to write.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the set; ids are syn{seed:04d}_{i:04d}.")] = 0,
    frames: Annotated[int | None, typer.Option(help="Source frames per video (24 FPS).")] = None,
    width: Annotated[int | None, typer.Option(help="Frame width in pixels.")] = None,
    height: Annotated[int | None, typer.Option(help="Frame height in pixels.")] = None,
    objects: Annotated[int | None, typer.Option(help="Objects per video (parts come on top).")] = None,
    noise: Annotated[
        float | None,
        typer.Option(help="Sensor noise in grey levels (default 2.5, what the bootstrap model trained at)."),
    ] = None,
) -> None:
    """Write seeded synthetic videos with exact ground-truth masklets (SA-V JSON beside each MP4)."""

    def report(video: SyntheticVideo, mp4: Path) -> None:
        typer.echo(f"{mp4}\t{len(video.masklets)} masklets")

    try:
        given = {"source_frames": frames, "width": width, "height": height, "objects": objects, "noise_sigma": noise}
        spec = replace(DEFAULT_SPEC, **{name: value for name, value in given.items() if value is not None})
        synthesize(out, videos, seed, spec, on_video=report)
    except DataEngineError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
