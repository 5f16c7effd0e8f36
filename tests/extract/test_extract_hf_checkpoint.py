"""`scale extract --backbone videomae-b --checkpoint <HF dir>` end to end on the real UCF101 clips."""
import numpy as np
import torch

from scale_toolkit.backbones import backbone_spec
from scale_toolkit.extract.prepare import ViewRecipe, prepare_video
from scale_toolkit.store import DONE, FeatureStore
from tests.backbones.backbone_layouts import hf_small_config, import_hf_videomae, randomise_


def test_videomae_hf_directory_end_to_end(shared_data, tmp_path, run_cli):
    _, VideoMAEModel, _, _ = import_hf_videomae()
    hf = randomise_(VideoMAEModel(hf_small_config(image_size=64, num_frames=4)))
    hf.save_pretrained(tmp_path / "hf")
    root = shared_data / "videos/ucf101-mini/UCF-101"
    code, out, err = run_cli("extract", "--backbone", "videomae-b", "--checkpoint", tmp_path / "hf", "--dataset", "ucf101",
                             "--root", root, "--splits", shared_data / "splits/ucf101", "--view", "eval15",
                             "--out", tmp_path / "s.zarr", "--workers", "1", "--limit", "2",
                             "--precision", "fp32")  # compared with HF's fp32 forward (auto may pick bf16)
    assert code == 0, err
    fs = FeatureStore.open(tmp_path / "s.zarr")
    assert (fs.status == DONE).all() and fs.feature_dim == 64
    spec = fs.attrs["backbone"]
    assert spec["frames"] == 4 and spec["crop_size"] == 64  # the architecture follows config.json
    assert len(fs.attrs["checkpoint_sha256"]) == 64
    # the stored clip features are what Hugging Face's own model computes on the same clips
    recipe = ViewRecipe("eval15", spec["frames"], spec["stride"], spec["crop_size"], tuple(spec["mean"]), tuple(spec["std"]),
                        0, "auto")
    clips = prepare_video(root / fs.video_ids[0], fs.video_ids[0], recipe)["clips"]
    with torch.no_grad():
        ref = hf(pixel_values=torch.from_numpy(clips).permute(0, 2, 1, 3, 4)).last_hidden_state.mean(1).numpy()
    got = fs.read([0])["features"][0].astype(np.float32)
    np.testing.assert_allclose(got, ref, rtol=2e-3, atol=2e-3)
    assert backbone_spec("videomae-b").feature_dim == 768  # the registered variant itself is ViT-B
