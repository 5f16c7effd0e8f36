import json

from tests.store.helpers import make_store, random_arrays


def test_help_describes_every_option(run_cli):
    wanted = {"import": ["--out", "--overwrite", "--config"], "info": ["--json", "--config"], "export": ["--out"]}
    for cmd, flags in wanted.items():
        code, out, _ = run_cli(cmd, "--help")
        assert code == 0
        for flag in flags:
            assert flag in out
    code, out, _ = run_cli("--help")
    assert code == 0 and "import" in out and "info" in out


def test_info_json_and_table(tmp_path, run_cli):
    make_store(tmp_path / "s.zarr", random_arrays(n=6))
    code, out, _ = run_cli("info", tmp_path / "s.zarr", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["videos"] == 6 and info["status"]["done"] == 6 and info["classes"] == 3
    code, out, _ = run_cli("info", tmp_path / "s.zarr")
    assert code == 0 and "clips_per_video" in out


def test_user_mistakes_are_one_line_exit_2(tmp_path, run_cli):
    for args in (["info", tmp_path / "nope.zarr"], ["no-such-command"], ["import"], ["info", tmp_path]):
        code, out, err = run_cli(*args)
        assert code == 2, args
        assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), err
        assert "Traceback" not in err


def test_config_file_fills_flags_and_flags_win(tmp_path, run_cli):
    a = random_arrays(n=4)
    make_store(tmp_path / "s.zarr", a)
    run_cli("export", tmp_path / "s.zarr", "--out", tmp_path / "s.npz")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'out = "{tmp_path / "from_config.zarr"}"\n')
    assert run_cli("import", tmp_path / "s.npz", "--config", cfg)[0] == 0
    assert (tmp_path / "from_config.zarr").exists()
    assert run_cli("import", tmp_path / "s.npz", "--config", cfg, "--out", tmp_path / "flag.zarr")[0] == 0
    assert (tmp_path / "flag.zarr").exists()
    cfg.write_text("bogus = 1\n")
    code, _, err = run_cli("import", tmp_path / "s.npz", "--config", cfg, "--out", tmp_path / "x.zarr")
    assert code == 2 and "unknown key 'bogus'" in err
