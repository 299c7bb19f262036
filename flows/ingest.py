"""The ``ingest`` flow: videos from files, folders and S3 prefixes into the catalog, one task per video.

Ingestion is idempotent by content (:mod:`engine.ingest`), so the hourly deployment can point
at a drop folder or prefix and only new videos are added. A bad video is reported and the
others go on; a source that cannot be listed at all (a missing folder, an unreachable bucket)
fails the run after the rest is done, so a misconfigured deployment does not look healthy.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from engine.errors import DataEngineError
from engine.ingest import IngestResult, IngestStatus
from flows.progress import Progress
from flows.resources import resources, settings_for
from flows.retries import retry_transient
from storage.ingest_sources import ingest_sources
from storage.source_listing import list_video_sources


@dataclass(frozen=True)
class IngestSummary:
    """One line per video found: what became of it."""

    results: tuple[IngestResult, ...]
    unreadable: tuple[tuple[str, str], ...] = ()  # sources that could not be listed, with the reason

    @property
    def ingested(self) -> tuple[str, ...]:
        return tuple(r.video_id for r in self.results if r.status is IngestStatus.INGESTED and r.video_id)

    @property
    def already_present(self) -> tuple[str, ...]:
        return tuple(r.video_id for r in self.results if r.status is IngestStatus.ALREADY_PRESENT and r.video_id)

    @property
    def failed(self) -> tuple[IngestResult, ...]:
        return tuple(r for r in self.results if r.status is IngestStatus.FAILED)

    @property
    def video_ids(self) -> tuple[str, ...]:
        """Every video of the sources now in the catalog, new or not: what the next step works on."""
        return self.ingested + self.already_present


@task(
    name="list-videos",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_transient,
    cache_policy=NO_CACHE,
)
def list_videos(
    sources: list[str], catalog_url: str | None = None, object_store_url: str | None = None
) -> tuple[list[str], list[tuple[str, str]]]:
    """The video files (or S3 objects) behind ``sources``, and the sources that could not be listed."""
    listed = list_video_sources(sources, settings_for(catalog_url, object_store_url))
    return list(listed.videos), [tuple(u) for u in listed.unreadable]  # type: ignore[misc]


@task(
    name="ingest-video",
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_transient,
    timeout_seconds=3600,
    cache_policy=NO_CACHE,
    task_run_name="ingest {source}",
)
def ingest_video(source: str, catalog_url: str | None = None, object_store_url: str | None = None) -> IngestResult:
    """Ingest one video; its result says ingested, already present, or failed and why.

    Ingestion reports our own errors as a failed result (a bad file must not stop the
    others), so Prefect retries only what escapes it (a crashed decoder, a dropped
    connection); a video that failed is tried again by the next run, ingestion being idempotent.
    """
    res = resources(catalog_url, object_store_url)
    (result,) = ingest_sources([source], catalog=res.catalog, store=res.store, settings=res.settings)
    return result


@flow(name="ingest", log_prints=False)
def ingest(sources: list[str], catalog_url: str | None = None, object_store_url: str | None = None) -> IngestSummary:
    """Ingest every video the sources name (files, folders, ``s3://bucket/prefix``)."""
    logger = get_run_logger()
    videos, unreadable = list_videos(sources, catalog_url, object_store_url)
    results: list[IngestResult] = []
    with Progress("ingest-progress", "videos ingested", len(videos)) as progress:
        for source in videos:
            state = ingest_video(source, catalog_url, object_store_url, return_state=True)
            if state.is_completed():
                results.append(state.result())
            else:
                results.append(IngestResult(source, IngestStatus.FAILED, error=str(state.message or state.name)))
            progress.advance()
    summary = IngestSummary(tuple(results), tuple(unreadable))
    for r in summary.failed:
        logger.warning("failed %s: %s", r.source, r.error)
    logger.info(
        "%d videos: %d ingested, %d already present, %d failed",
        len(results),
        len(summary.ingested),
        len(summary.already_present),
        len(summary.failed),
    )
    if unreadable:
        raise DataEngineError("; ".join(f"{source}: {error}" for source, error in unreadable))
    return summary
