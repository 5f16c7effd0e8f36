"""Class: markup injection. Names of files, folders and classes that look like rich markup or
emoji codes (`[x]`, `[g01]`, `[/bold]`, `[red]`, `[i]`, `:smile:`) are printed exactly as they
are by extract, info and retrieve, and never crash a command after its work is done."""
from __future__ import annotations

from scale_toolkit.demo.synthetic import SyntheticSpec, make_synthetic_dataset

LABELS = ["[g01]", "[/bold]", ":smile:"]  # CSV labels may hold a closing tag; a folder name cannot


def test_markup_like_names_print_verbatim(tmp_path, run_cli, monkeypatch):
    from cli import app

    for console in (app.out, app.console):  # no line wrapping inside the names compared below
        monkeypatch.setattr(console, "width", 1000)
    root = tmp_path / "videos"
    make_synthetic_dataset(root, SyntheticSpec(videos_per_class=2, frames=16, height=32, width=40))
    (root / "[g01]").mkdir()
    rows = ["path,label,split"]
    for k, cls in enumerate(sorted(p for p in root.iterdir() if p.is_dir() and p.name != "[g01]")[:3]):
        for i, video in enumerate(sorted(cls.iterdir())):
            new = root / "[g01]" / f"[x]{k}{i}[b]{video.suffix}"
            video.rename(new)
            rows.append(f"{new.relative_to(root)},{LABELS[k]},{'test' if i else 'train'}")
    (root / "[g01]" / "[red]bad[i].mp4").write_bytes(b"not a video")
    rows.append("[g01]/[red]bad[i].mp4,[g01],train")
    (root / "m.csv").write_text("\n".join(rows) + "\n")
    store = tmp_path / "[out] s.zarr"
    code, out, err = run_cli("extract", "--backbone", "tiny", "--dataset", "csv", "--csv", root / "m.csv", "--root", root,
                             "--out", store, "--workers", "0", "--threads", "1")
    assert code == 0, err
    assert f"{store} shard 0/1: 6 videos extracted now" in out
    assert "failed: [g01]/[red]bad[i].mp4: " in out

    code, out, err = run_cli("info", store)
    assert code == 0, err
    assert "failed: [g01]/[red]bad[i].mp4: " in out and "[out] s.zarr" in out

    index = tmp_path / "[i].index"
    code, out, err = run_cli("retrieve", "--store", store, "--build-index", index)
    assert code == 0 and f"wrote {index}" in out, err
    code, out, err = run_cli("retrieve", "--index", index, "--query", "[g01]/[x]11[b].mp4", "--top", "3",
                             "--include-self")
    assert code == 0, err
    assert "nearest videos to [g01]/[x]11[b].mp4 ([/bold])" in out
    assert "[x]11[b].mp4" in out and "😄" not in out
