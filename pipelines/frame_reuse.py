"""Score overlapping TSN clips computing each frame's backbone features once.

:class:`FrameReuse` scores clips with the two engines of :mod:`engines.frame_reuse`: it
preprocesses and runs the frame engine only on the sampled frames whose features are not
cached yet (all of a batch's new frames in one call), then the head engine on each clip's
features in the full model's view order (crop-major: ``view = crop × frames + m``). The
scores are those of the full model up to float rounding.

**Frame identity.** A frame is ``(owner, frame_idx)`` with ``owner = (source_id, track_id)``,
and its cached features are used only for the very same image array (frames are stored by
reference and never written to), so a frame index that comes back after a timestamp reset or
a reconnect, with other pixels, is computed again. A clip without ``frame_ids`` (built by hand)
is scored with all its frames computed.

**Memory.** An owner keeps at most ``max_frames`` frames (default: 4 × the frames of a
sample). After each clip, frames older than that clip's oldest sampled frame are freed
(later windows start later), all of an owner's frames when its frame indices go back, and
an owner's entry when :meth:`FrameReuse.forget` says its source ended; past ``max_owners``
the least recently used owner is dropped.

Thread-safe: live mode scores in the stage's worker thread while the stage thread may
:meth:`~FrameReuse.forget` a source.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from engines.clip_spec import ClipSpec
from engines.frame_reuse import FrameReuseEngines
from engines.transforms import preprocess
from pipelines.clip_buffer import Clip

#: Most frames per frame-engine call.
FRAME_BATCH = 32


@dataclass
class _Cached:
    image: np.ndarray  # the frame the features were computed from (identity check)
    features: np.ndarray  # (num_crops, C)


class FrameReuse:
    """Clip scores from cached per-frame features (see the module docstring).

    Args:
        engines: The frame and head engines.
        spec: The clip settings (sampling, resize, crops, normalisation).
        max_frames: Frames kept per owner; default ``4 × spec.frames_per_sample``.
        max_owners: Owners (sources or tracks) kept at once.

    Raises:
        ValueError: If the engines' view count does not match ``spec``, or a size is not positive.

    Attributes:
        computed: Frame views (frames × crops) the backbone ran on.
        reused: Frame views of the clips that it did not run on (cached, or repeated within the
            clips scored together); ``computed + reused`` is what the full model runs on.
    """

    def __init__(
        self,
        engines: FrameReuseEngines,
        spec: ClipSpec,
        *,
        max_frames: int | None = None,
        max_owners: int = 64,
    ) -> None:
        if spec.input_format != "NCHW" or engines.num_views != spec.num_views:
            raise ValueError(
                f"FrameReuse: the engines take {engines.num_views} views, the clip spec gives {spec.num_views} "
                f"({spec.input_format}); build them from the same config"
            )
        self.max_frames = int(max_frames) if max_frames is not None else 4 * spec.frames_per_sample
        if self.max_frames < spec.frames_per_sample or max_owners < 1:
            raise ValueError(
                f"FrameReuse: max_frames must be >= {spec.frames_per_sample} and max_owners >= 1, "
                f"got {self.max_frames} and {max_owners}"
            )
        self.engines = engines
        self.spec = spec
        # one sampled frame → its crops: the same pipeline on a 1-frame sample
        self._frame_spec = replace(
            spec, clip_len=1, num_clips=1, frame_interval=1, sampler="SampleFrames", twice_sample=False
        )
        self.max_owners = max_owners
        self._cache: OrderedDict[Hashable, OrderedDict[int, _Cached]] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0
        self.reused = 0

    def __len__(self) -> int:
        """Frames cached over all owners."""
        with self._lock:
            return sum(len(entries) for entries in self._cache.values())

    def scores(self, clips: Sequence[Clip]) -> np.ndarray:
        """Class scores ``(len(clips), num_classes)`` float32, as the full model gives them.

        Raises:
            ValueError: If a clip's frames do not fit the spec (see :func:`~engines.transforms.preprocess`).
        """
        count, crops = self.spec.frames_per_sample, self.spec.num_crops
        with self._lock:
            found: dict[tuple[Hashable, int, int], np.ndarray] = {}  # (owner, frame_idx, id(image)) -> features
            todo: dict[tuple[Hashable, int, int], tuple[np.ndarray, bool]] = {}
            for clip in clips:
                if len(clip.frames) != count:
                    raise ValueError(f"FrameReuse: a clip has {len(clip.frames)} frames, the spec {count}")
                owner = (clip.source_id, clip.track_id)
                entries = self._entries(owner, clip)
                ids = clip.frame_ids if len(clip.frame_ids) == count else (None,) * count
                for idx, image in zip(ids, clip.frames, strict=True):
                    key = (owner, -1 if idx is None else idx, id(image))
                    if key in found or key in todo:
                        continue
                    hit = entries.get(idx) if (entries is not None and idx is not None) else None
                    if hit is not None and hit.image is image:
                        found[key] = hit.features
                    else:
                        todo[key] = (image, clip.resized)
            self._compute(todo, found)
            self.reused += len(clips) * count * crops - len(todo) * crops
            rows = []
            for clip in clips:
                owner = (clip.source_id, clip.track_id)
                ids = clip.frame_ids if len(clip.frame_ids) == count else (None,) * count
                keys = [(owner, -1 if idx is None else idx, id(img)) for idx, img in zip(ids, clip.frames, strict=True)]
                feats = np.stack([found[k] for k in keys], axis=1)  # (crops, count, C): the full model's view order
                rows.append(feats.reshape(crops * count, -1))
                self._remember(owner, clip, ids, found)
            return self.engines.scores(np.stack(rows))

    def forget(self, source_id: str) -> int:
        """Free the cached frames of a source (it ended or disconnected). Returns the frames freed."""
        with self._lock:
            owners = [o for o in self._cache if isinstance(o, tuple) and o[0] == source_id]
            freed = sum(len(self._cache.pop(o)) for o in owners)
        return freed

    def clear(self) -> None:
        """Free every cached frame."""
        with self._lock:
            self._cache.clear()

    # ------------------------------------------------------------------ internals

    def _entries(self, owner: Hashable, clip: Clip) -> OrderedDict[int, _Cached] | None:
        """The owner's cache, emptied when its frame indices went back (a reset: old entries are stale)."""
        entries = self._cache.get(owner)
        if entries is not None and entries and clip.frame_ids and max(entries) > clip.frame_idx:
            entries.clear()
        return entries

    def _compute(
        self, todo: dict[tuple[Hashable, int, int], tuple[np.ndarray, bool]], found: dict[Any, np.ndarray]
    ) -> None:
        """Run the frame engine on ``todo`` (in chunks) and put each frame's ``(crops, C)`` into ``found``."""
        keys = list(todo)
        crops = self.spec.num_crops
        for start in range(0, len(keys), FRAME_BATCH):
            chunk = keys[start : start + FRAME_BATCH]
            batch = np.stack(
                [preprocess((todo[k][0],), self._frame_spec, normalize=True, resized=todo[k][1]) for k in chunk]
            )  # (n, crops, 3, h, w)
            feats = self.engines.features(batch.reshape(-1, *batch.shape[2:]))
            feats = feats.reshape(len(chunk), crops, -1)
            for i, key in enumerate(chunk):
                found[key] = feats[i]
            self.computed += len(chunk) * crops

    def _remember(self, owner: Hashable, clip: Clip, ids: Sequence[int | None], found: dict[Any, np.ndarray]) -> None:
        """Cache the clip's frames, then free what no later window of the owner can use."""
        if ids and ids[0] is None:
            return
        entries = self._cache.get(owner)
        if entries is None:
            entries = self._cache[owner] = OrderedDict()
            while len(self._cache) > self.max_owners:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(owner)
        for idx, image in zip(ids, clip.frames, strict=True):
            if idx is not None:
                entries[idx] = _Cached(image, found[(owner, idx, id(image))])
                entries.move_to_end(idx)
        oldest = min(i for i in ids if i is not None)
        for idx in [i for i in entries if i < oldest]:
            del entries[idx]
        while len(entries) > self.max_frames:
            entries.popitem(last=False)
