"""initial catalog: videos, frames, masklets, events, verifications, models, training runs

Revision ID: 0001
Revises: 
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('training_runs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('model_name', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('config', JSON, nullable=False),
    sa.Column('dataset', JSON, nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('videos',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('source_uri', sa.Text(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('source_fps', sa.Float(), nullable=False),
    sa.Column('source_frame_count', sa.Integer(), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=False),
    sa.Column('sample_fps', sa.Float(), nullable=False),
    sa.Column('frame_count', sa.Integer(), nullable=False),
    sa.Column('environment', sa.String(length=32), nullable=False),
    sa.Column('split', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('content_hash')
    )
    op.create_table('frames',
    sa.Column('video_id', sa.String(length=128), nullable=False),
    sa.Column('frame_index', sa.Integer(), nullable=False),
    sa.Column('source_frame_index', sa.Integer(), nullable=False),
    sa.Column('timestamp_s', sa.Float(), nullable=False),
    sa.Column('object_key', sa.Text(), nullable=False),
    sa.Column('byte_size', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['video_id'], ['videos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('video_id', 'frame_index')
    )
    op.create_table('model_versions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('config', JSON, nullable=False),
    sa.Column('weights_uri', sa.Text(), nullable=True),
    sa.Column('training_run_id', sa.Integer(), nullable=True),
    sa.Column('metrics', JSON, nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['model_versions.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['training_run_id'], ['training_runs.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name', 'version', name='uq_model_versions_name_version')
    )
    op.create_table('masklets',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('video_id', sa.String(length=128), nullable=False),
    sa.Column('object_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('phase', sa.Integer(), nullable=True),
    sa.Column('annotator', sa.String(length=128), nullable=True),
    sa.Column('model_version_id', sa.Integer(), nullable=True),
    sa.Column('frame_count', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('edited_frame_count', sa.Integer(), nullable=False),
    sa.Column('first_appeared_frame', sa.Integer(), nullable=True),
    sa.Column('visibility_changes', sa.Integer(), nullable=False),
    sa.Column('size_abs', sa.Float(), nullable=False),
    sa.Column('size_bucket', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("source IN ('ground_truth', 'manual', 'auto')", name='ck_masklets_source'),
    sa.CheckConstraint("status IN ('draft', 'in_verification', 'satisfactory', 'unsatisfactory', 'rejected', 'reference')", name='ck_masklets_status'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['video_id'], ['videos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('masklets', schema=None) as batch_op:
        batch_op.create_index('ix_masklets_video_source', ['video_id', 'source'], unique=False)
        batch_op.create_index('uq_masklets_ground_truth', ['video_id', 'object_id'], unique=True, sqlite_where=sa.text("source = 'ground_truth'"), postgresql_where=sa.text("source = 'ground_truth'"))

    op.create_table('model_aliases',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('alias', sa.String(length=64), nullable=False),
    sa.Column('model_version_id', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('name', 'alias')
    )
    op.create_table('annotation_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('masklet_id', sa.Integer(), nullable=True),
    sa.Column('video_id', sa.String(length=128), nullable=True),
    sa.Column('annotator', sa.String(length=128), nullable=False),
    sa.Column('phase', sa.Integer(), nullable=True),
    sa.Column('frame_index', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('payload', JSON, nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['masklet_id'], ['masklets.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['video_id'], ['videos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('annotation_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_annotation_events_masklet_id'), ['masklet_id'], unique=False)
        batch_op.create_index('ix_annotation_events_phase_time', ['phase', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_annotation_events_task_id'), ['task_id'], unique=False)

    op.create_table('masklet_frames',
    sa.Column('masklet_id', sa.Integer(), nullable=False),
    sa.Column('frame_index', sa.Integer(), nullable=False),
    sa.Column('rle', sa.LargeBinary(), nullable=False),
    sa.Column('area', sa.Integer(), nullable=False),
    sa.Column('edited', sa.Boolean(), nullable=False),
    sa.Column('stability_score', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['masklet_id'], ['masklets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('masklet_id', 'frame_index')
    )
    op.create_table('verifications',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('masklet_id', sa.Integer(), nullable=False),
    sa.Column('verifier', sa.String(length=128), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('frames', JSON, nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("verdict IN ('satisfactory', 'unsatisfactory', 'rejected')", name='ck_verifications_verdict'),
    sa.ForeignKeyConstraint(['masklet_id'], ['masklets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('verifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_verifications_masklet_id'), ['masklet_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('verifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_verifications_masklet_id'))

    op.drop_table('verifications')
    op.drop_table('masklet_frames')
    with op.batch_alter_table('annotation_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_annotation_events_task_id'))
        batch_op.drop_index('ix_annotation_events_phase_time')
        batch_op.drop_index(batch_op.f('ix_annotation_events_masklet_id'))

    op.drop_table('annotation_events')
    op.drop_table('model_aliases')
    with op.batch_alter_table('masklets', schema=None) as batch_op:
        batch_op.drop_index('uq_masklets_ground_truth', sqlite_where=sa.text("source = 'ground_truth'"), postgresql_where=sa.text("source = 'ground_truth'"))
        batch_op.drop_index('ix_masklets_video_source')

    op.drop_table('masklets')
    op.drop_table('model_versions')
    op.drop_table('frames')
    op.drop_table('videos')
    op.drop_table('training_runs')
