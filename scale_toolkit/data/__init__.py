"""Input half of extraction: manifests, clip plans, decoding and clip transforms."""

from scale_toolkit.data.clips import VIEWS, ClipBox, VideoInfo, all_frame_indices, clip_frames, plan_clips
from scale_toolkit.data.decode import VideoDecodeError, probe_video, read_frames
from scale_toolkit.data.manifest import VIDEO_EXTENSIONS, Manifest, VideoRecord, load_manifest
from scale_toolkit.data.transforms import clip_to_tensor

__all__ = [
    "VIEWS",
    "VIDEO_EXTENSIONS",
    "ClipBox",
    "Manifest",
    "VideoDecodeError",
    "VideoInfo",
    "VideoRecord",
    "all_frame_indices",
    "clip_frames",
    "clip_to_tensor",
    "load_manifest",
    "plan_clips",
    "probe_video",
    "read_frames",
]
