"""``dataengine demo``: the main job on the embedded default.

Seeded synthetic videos with ground truth are written, then :func:`flows.engine_cycle.
engine_cycle` runs the SAM 2 data engine on them with simulated annotators and verifiers:
Phase 1 (and the validation set) -> retrain -> Phase 2 -> retrain -> Phase 3 with auto
masklets and refinement -> retrain -> export -> report, on the embedded catalog (SQLite), local
objects, a temporary Prefect API (started out of reach of the terminal's Ctrl-C,
:mod:`flows.cli.api_server`) and the bundled ``sam2-compact`` bootstrap model. It ends
with the paper's Table 1 beside ours and the targets checked. Interrupted, it resumes when run
again (the same ``--out``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.context import reports_errors


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@reports_errors
def demo(
    videos: int = typer.Option(8, min=5, help="synthetic videos (validation + three phases)"),
    validation_videos: int = typer.Option(2, min=1, help="of which held out for validation (annotated in Phase 1)"),
    frames: int = typer.Option(48, min=12, help="source frames per video (sampled at 6 of 24 FPS)"),
    objects: int = typer.Option(2, min=1, help="objects per video"),
    model: str = typer.Option("sam2-compact", help="model in the loop (a registry name or hub name), or 'simulated'"),
    workers: int = typer.Option(2, min=1, help="parallel simulated annotators"),
    retrain_steps: int = typer.Option(40, min=1, help="training steps per retraining round"),
    retrain_lr: float | None = typer.Option(
        None, min=0.0, help="peak learning rate of a retraining round (default: the model's fine-tuning rate)"
    ),
    noise: float = typer.Option(
        2.5, min=0.0, help="sensor noise of the synthetic videos, in grey levels (the bootstrap model trained at 2.5)"
    ),
    auto: bool = typer.Option(True, "--auto/--no-auto", help="auto masklets on the Phase 3 videos"),
    seed: int = typer.Option(0, min=0, help="seed of the videos and the simulated people"),
    out: Path = typer.Option(Path(".dataengine/demo"), help="folder for videos, state, exports and the report"),
) -> None:
    """Run the whole data engine on synthetic videos and print the paper-style table."""
    from engine.synthetic import SyntheticSpec, synthesize
    from flows.cli.api_server import terminal_safe_api
    from flows.engine_cycle import engine_cycle
    from training.gain import gain_text

    spec = SyntheticSpec(source_frames=frames, objects=objects, parts=0, force_events=frames >= 32, noise_sigma=noise)
    paths = synthesize(out / "videos", videos=videos, seed=seed, spec=spec)
    typer.echo(f"{len(paths)} synthetic videos with ground truth in {out / 'videos'}")
    try:
        with terminal_safe_api():
            result = engine_cycle(
                sources=[str(p) for p in paths],
                validation_videos=validation_videos,
                model=model,
                workers=workers,
                retrain_steps=retrain_steps,
                retrain_lr=retrain_lr,
                with_auto_masklets=auto,
                out_dir=str(out),
                seed=seed,
            )
    except KeyboardInterrupt:
        typer.echo("interrupted: what was done is kept; run the same command again to resume", err=True)
        raise typer.Exit(130) from None
    typer.echo("\n" + result.table)
    typer.echo("")
    for line in result.targets:
        typer.echo(line)
    for r in result.rounds:
        before, after = r.get("val_jf_before"), r.get("val_jf_after")
        typer.echo(
            f"retrain after Phase {r['after_phase']}: {r.get('version') or '-'} validation J&F "
            f"{_fmt(before)} -> {_fmt(after)}, gain {gain_text(r)} "
            f"({'promoted' if r.get('promoted') else 'not promoted'})"
        )
    typer.echo(f"\nSA-V export: {result.exports.get('sav_dir')}; dashboard: {out / 'report' / 'dashboard.html'}")


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"
