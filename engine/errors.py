"""The project's own exception types.

Every error that reaches a user is one of these, and its message says what happened and,
where it can, what to do about it. Callers at the edges (the CLI, flows) catch
:class:`DataEngineError` and print it without a traceback.
"""

from __future__ import annotations


class DataEngineError(Exception):
    """Base class of every error the data engine raises on purpose."""


class ConfigError(DataEngineError):
    """A setting is malformed or points at something unusable."""


class BadVideoError(DataEngineError):
    """A video file cannot be ingested (not a video, truncated, no frames, absurd size, bad name)."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class BadMaskError(DataEngineError):
    """A mask or RLE has the wrong shape, type or encoding."""


class BadAnnotationFileError(DataEngineError):
    """An SA-V JSON (or other annotation file) is malformed or does not match its video."""


class NotFoundError(DataEngineError):
    """A video, masklet, object or other catalog record does not exist."""


class CatalogError(DataEngineError):
    """The catalog database is unreachable, unmigrated or refused a write."""


class ObjectStoreError(DataEngineError):
    """The object store is unreachable, misconfigured or refused an operation."""


class ObjectNotFoundError(ObjectStoreError, NotFoundError):
    """No object is stored under the requested key."""


class ObjectExistsError(ObjectStoreError):
    """A write that must not overwrite found an object already stored under its key."""


class DuplicateVideoError(CatalogError):
    """Another writer recorded a video with the same content (or id) first."""


class BadFolderLayoutError(DataEngineError):
    """A folder of masks is laid out neither as SA-V (video/object/frame.png) nor as DAVIS (video/frame.png)."""


class QueueError(DataEngineError):
    """A task queue was asked for something it cannot do (a bad lease, count, state or verdict)."""


class UnknownQueueError(QueueError):
    """No queue has that name."""


class BadPayloadError(QueueError):
    """A task payload is not a JSON object the catalog can store exactly."""


class LeaseLostError(QueueError):
    """The caller no longer holds the task's lease (expired, re-claimed or finished): nothing was recorded."""


class SelfVerificationError(QueueError):
    """A worker tried to verify a masklet they annotated or refined."""


class ExportError(DataEngineError):
    """An export file could not be written (disk full, no permission, read-only folder)."""


class ModelNotFoundError(NotFoundError):
    """A segmentation model name or path resolves to nothing on this machine (nothing is downloaded)."""


class CorruptCheckpointError(DataEngineError):
    """A model checkpoint is present but unreadable, truncated or incomplete."""


class IncompatibleModelError(ConfigError):
    """A model cannot do what it was asked (e.g. a SAM 1 image model asked to track video)."""


class BadPromptError(DataEngineError):
    """A click, box, mask-logits input or frame index given to a segmenter is unusable."""


class UnknownObjectError(NotFoundError):
    """A video session was asked about an object id it does not track."""


class PredictorStateError(DataEngineError):
    """A segmenter was used out of order (predict before set_frame, propagate with no prompts)."""


class BadModelRefError(ConfigError):
    """A model reference, name or alias is malformed (``sam2-compact@champion`` is well formed)."""


class ModelRegistryError(DataEngineError):
    """The model registry refused a registration (bad weights folder, config or metrics not JSON)."""


class AnnotationError(DataEngineError):
    """An annotation action or procedure cannot go on (a frame outside the video, an object never visible)."""


class MissingGroundTruthError(NotFoundError):
    """A simulated annotator or verifier needs ground truth that the video does not have."""


class SegmenterFailedError(DataEngineError):
    """The segmentation model failed in the middle of a masklet; nothing of that masklet was kept."""


class AlreadyVerifiedError(QueueError):
    """A verdict was asked for a masklet that is no longer waiting for one (already judged)."""


class TrainingDataError(DataEngineError):
    """The catalog cannot give a usable training or validation set."""


class NoTrainingDataError(TrainingDataError):
    """No satisfactory masklet is available to train on yet."""


class EmptyValidationSetError(TrainingDataError):
    """No validation video with satisfactory Phase 1 masklets: a trained model could not be judged."""


class ValidationOverlapError(TrainingDataError):
    """A validation video is (or was) training data, so validation would flatter the model."""


class BadDatasetManifestError(TrainingDataError):
    """A recorded dataset manifest is malformed or does not match its digest."""


class TrainingRunError(DataEngineError):
    """A training run record was asked for an impossible change (finishing a run twice, bad config)."""


class PromotionError(DataEngineError):
    """A promotion decision cannot be applied as made (stale champion, not the version it judged)."""


class AuthenticationError(DataEngineError):
    """No valid login: no session, a logged-out or expired one, a wrong password, or a disabled user."""


class LoginThrottledError(AuthenticationError):
    """Too many failed logins for this user or from this address lately: wait before trying again."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermissionDeniedError(DataEngineError):
    """A logged-in user asked for something their role or their tasks do not allow."""


class BadUserError(DataEngineError):
    """A user name, role or password is unusable, or the name is taken."""


class WorkInProgressError(DataEngineError):
    """The task is busy with another action (a propagation running): wait for it or cancel it."""
