"""Extraction's progress events (contracts/progress.py): one type per kind, counting what reached the store."""
from scale_toolkit.contracts.progress import ExtractBlock, ExtractEnd, ExtractStart, ExtractVideo
from scale_toolkit.extract import ExtractConfig, run_extraction
from scale_toolkit.store import FeatureStore


def test_events_count_videos_decoded_and_blocks_written(tiny_dataset, tmp_path):
    root, csv = tiny_dataset
    events = []
    cfg = ExtractConfig(backbone="tiny", dataset="csv", csv=csv, root=root, view="eval15", out=tmp_path / "s.zarr",
                        workers=0, rows_per_chunk=4, threads=1)
    summary = run_extraction(cfg, progress=events.append)
    start, end = events[0], events[-1]
    assert isinstance(start, ExtractStart) and isinstance(end, ExtractEnd)
    assert (start.total, start.done, start.written, start.already_done) == (12, 0, 0, 0)
    assert start.precision == summary.precision
    videos = [e for e in events if isinstance(e, ExtractVideo)]
    assert [e.video_id for e in videos] == FeatureStore.open(tmp_path / "s.zarr").video_ids
    assert [e.done for e in videos] == list(range(1, 13)) and all(e.error is None for e in videos)
    # a block is reported when the next one starts; the last one is counted in the end event
    assert [e.written for e in events if isinstance(e, ExtractBlock)] == [4, 8]
    assert (end.written, end.done, end.failed, end.clips) == (12, 12, 0, 12 * 15) and end.started == start.started
