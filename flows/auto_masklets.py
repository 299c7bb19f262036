"""The ``auto-masklets`` flow: candidates on new videos, sent to verification.

As in the SAM 2 data engine, the model proposes masklets on videos no one has worked yet
(:mod:`phases.auto_masklets`); each candidate is stored in verification with its verify task,
and the ``verify`` flow decides: satisfactory ones join the dataset as ``auto``,
unsatisfactory ones go to Phase 3 refinement. A video is new while it has no auto masklet,
so the nightly deployment never proposes twice on the same video. One task per video,
model-bound (``gpu`` tag with a real model).
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.segmenters import DEFAULT_MODEL
from flows.models import candidate_generator, model_tags
from flows.progress import Progress
from flows.resources import resources
from flows.retries import retry_transient
from phases.auto_masklets import generate_and_submit
from storage.flow_queries import videos_without_auto_masklets


@dataclass(frozen=True)
class VideoCandidates:
    """The candidates proposed on one video: their masklet ids and verify task ids."""

    video_id: str
    masklet_ids: tuple[int, ...]
    verify_task_ids: tuple[int, ...]
    model_version_id: int | None


@dataclass(frozen=True)
class AutoMaskletsResult:
    videos: tuple[VideoCandidates, ...]
    failed: tuple[tuple[str, str], ...] = ()  # (video id, error)

    @property
    def candidates(self) -> int:
        return sum(len(v.masklet_ids) for v in self.videos)


@task(
    name="new-videos", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_transient, cache_policy=NO_CACHE
)
def new_videos(
    video_ids: list[str] | None = None, catalog_url: str | None = None, object_store_url: str | None = None
) -> list[str]:
    """The videos (of ``video_ids``, or all) without auto masklets yet."""
    return videos_without_auto_masklets(resources(catalog_url, object_store_url).catalog, video_ids)


@task(
    name="propose-masklets",
    retries=1,
    retry_delay_seconds=30,
    retry_condition_fn=retry_transient,
    timeout_seconds=3600,
    cache_policy=NO_CACHE,
    task_run_name="propose masklets on {video_id}",
)
def propose_masklets(
    video_id: str,
    model: str = DEFAULT_MODEL,
    max_candidates: int | None = None,
    seed: int = 0,
    catalog_url: str | None = None,
    object_store_url: str | None = None,
) -> VideoCandidates:
    """Generate a video's candidates with the model and send each to verification.

    A video that has auto masklets by now (a concurrent run, or an earlier attempt of this
    task that stored some before failing) gets none again: proposing twice would put
    duplicates in verification.
    """
    res = resources(catalog_url, object_store_url)
    if not videos_without_auto_masklets(res.catalog, [video_id]):
        return VideoCandidates(video_id, (), (), None)
    generator = candidate_generator(res, model, max_candidates=max_candidates, seed=seed)
    submitted = generate_and_submit(res.annotations, generator, [video_id])
    return VideoCandidates(
        video_id,
        tuple(m for m, _ in submitted),
        tuple(t for _, t in submitted),
        generator.model_version_id,
    )


@flow(name="auto-masklets", log_prints=False)
def auto_masklets(
    video_ids: list[str] | None = None,
    model: str = DEFAULT_MODEL,
    max_candidates: int | None = None,
    seed: int = 0,
    catalog_url: str | None = None,
    object_store_url: str | None = None,
) -> AutoMaskletsResult:
    """Propose auto masklets on every new video (of ``video_ids``, or all) and queue them for verification."""
    logger = get_run_logger()
    videos = new_videos(video_ids, catalog_url, object_store_url)
    step = propose_masklets.with_options(tags=model_tags(model))
    done: list[VideoCandidates] = []
    failed: list[tuple[str, str]] = []
    with Progress("auto-masklets-progress", "videos with candidates", len(videos)) as progress:
        for video_id in videos:
            state = step(video_id, model, max_candidates, seed, catalog_url, object_store_url, return_state=True)
            if state.is_completed():
                done.append(state.result())
            else:
                failed.append((video_id, str(state.message or state.name)))
                logger.warning("no candidates on %s: %s", video_id, state.message)
            progress.advance()
    result = AutoMaskletsResult(tuple(done), tuple(failed))
    logger.info(
        "%d candidates on %d new videos sent to verification; %d videos failed",
        result.candidates,
        len(done),
        len(failed),
    )
    return result
