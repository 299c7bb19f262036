"""Seeded synthetic videos with exact ground-truth masklets.

The demo, the tests and the benchmarks need videos whose true masklets are known exactly, and
the small SAM 2 trained from scratch needs them learnable but not trivial. A video is planned
from one seed (:func:`plan_scene`: background, objects and their parts, trajectories, lighting)
and then rendered frame by frame (:func:`render_frame`) into pixels and a per-pixel label map
in one pass, so a masklet is exactly the pixels its object painted, never an approximation.

What a video holds:

- a textured background (smooth noise, gradient, stripes, soft and hard blobs, a palette of its
  own) seen through a camera that pans and zooms slowly;
- ``spec.objects`` textured objects (ellipses, rounded rectangles, stars, polygons, blobs), each
  with its own colours and pattern, moving on smooth trajectories while they scale and rotate,
  drawn back to front so nearer objects occlude farther ones (a masklet holds visible pixels only);
- ``spec.parts`` of them carry a distinctly coloured part with a masklet of its own, a subset of
  the object's (SA-V's person and hands);
- a global brightness, contrast and colour drift, and a little sensor noise.

With ``spec.force_events`` every video also holds, by construction: an object that enters late
(outside the frame on frame 0), an object that leaves the frame and comes back (visible, then
invisible on at least one sampled frame, then visible again), and, given two objects or more,
that object passing in front of another one. Other objects may do the same by chance.

Where things live:

- :mod:`~engine.synthetic.spec`: :class:`SyntheticSpec`, what to synthesise;
- :mod:`~engine.synthetic.scene`: :func:`plan_scene`, the trajectories and forced events, helped by
  :mod:`~engine.synthetic.sprites` (objects' looks), :mod:`~engine.synthetic.backdrop`
  (background, camera, lighting), :mod:`~engine.synthetic.curves` and
  :mod:`~engine.synthetic.textures`;
- :mod:`~engine.synthetic.render`: :func:`render_frame`;
- :mod:`~engine.synthetic.generate`: :func:`generate_video`, a whole video and its masklets
  (:func:`render_sampled`: only its sampled frames, for training);
- :mod:`~engine.synthetic.files`: :func:`write_synthetic_video`, the MP4 and SA-V JSON;
- :mod:`~engine.synthetic.video_sets`: :func:`synthesize`, seeded sets of videos.
"""

from engine.synthetic.files import ENVIRONMENT, write_synthetic_video
from engine.synthetic.generate import SyntheticVideo, generate_video, render_sampled
from engine.synthetic.render import BACKGROUND, RenderedFrame, render_frame
from engine.synthetic.scene import RANDOM_EXIT_CHANCE, Scene, SceneObject, plan_scene
from engine.synthetic.spec import DEFAULT_SPEC, MIN_SAMPLES_FOR_EVENTS, SyntheticSpec
from engine.synthetic.sprites import CAMOUFLAGE_CHANCE, LOOKALIKE_CHANCE, PATTERNS, SHAPES, Sprite
from engine.synthetic.video_sets import synthesize, synthetic_video_id, video_seed

__all__ = [
    "BACKGROUND",
    "CAMOUFLAGE_CHANCE",
    "DEFAULT_SPEC",
    "ENVIRONMENT",
    "LOOKALIKE_CHANCE",
    "MIN_SAMPLES_FOR_EVENTS",
    "PATTERNS",
    "RANDOM_EXIT_CHANCE",
    "SHAPES",
    "RenderedFrame",
    "Scene",
    "SceneObject",
    "Sprite",
    "SyntheticSpec",
    "SyntheticVideo",
    "generate_video",
    "render_sampled",
    "plan_scene",
    "render_frame",
    "synthesize",
    "synthetic_video_id",
    "video_seed",
    "write_synthetic_video",
]
