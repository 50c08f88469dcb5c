import subprocess
import sys

import pytest

from geokd.cli import build_parser, main
from geokd.data.store import load_sequences


def test_every_subcommand_has_help():
    for argv in (
        [],
        ["ingest"],
        ["ingest", "utd-mhad"],
        ["ingest", "synthetic"],
        ["split"],
        ["distances"],
        ["distances", "block"],
        ["distances", "assemble"],
        ["report"],
    ):
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args([*argv, "--help"])
        assert exc.value.code == 0


def test_console_script_and_module_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "geokd", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("geokd ")


def test_ingest_utd_mhad_cli(fake_utd, tmp_path, capsys):
    out = tmp_path / "u.parquet"
    assert main(["ingest", "utd-mhad", str(fake_utd), str(out)]) == 0
    assert len(load_sequences(out)[0]) == 12
    capsys.readouterr()
    (fake_utd / "a9_s1_t1_skeleton.mat").write_bytes(b"broken")
    out2 = tmp_path / "v.parquet"
    assert main(["ingest", "utd-mhad", str(fake_utd), str(out2)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(
        f"geokd: error: {fake_utd / 'a9_s1_t1_skeleton.mat'}: not a readable MATLAB file"
    )
    assert not out2.exists()
    assert main(["ingest", "utd-mhad", str(fake_utd), str(out2), "--skip-bad"]) == 0
    assert "a9_s1_t1_skeleton.mat" in (tmp_path / "v.parquet.rejected.tsv").read_text()


def test_split_cli(fake_utd, tmp_path):
    store = tmp_path / "u.parquet"
    main(["ingest", "utd-mhad", str(fake_utd), str(store)])
    out = tmp_path / "split.tsv"
    assert main(["split", str(store), str(out), "--train", "1", "3", "--test", "2"]) == 0
    assert out.read_text().splitlines()[0] == "sequence_id\tlabel\tsubject\ttrial\tsplit"
    assert main(["split", str(store), str(tmp_path / "x.tsv"), "--train", "1", "--test", "1"]) == 2
    assert not (tmp_path / "x.tsv").exists()


def test_training_logs_one_line_per_epoch_and_quiet_silences_it(fake_utd, tmp_path, capsys):
    import json

    store, split = tmp_path / "u.parquet", tmp_path / "split.tsv"
    main(["ingest", "utd-mhad", str(fake_utd), str(store)])
    main(["split", str(store), str(split), "--train", "1", "2", "--test", "3"])
    settings = tmp_path / "train.json"
    train = {"epochs": 3, "batch_size": 4, "val_fraction": 0.25}
    student = {"d_model": 8, "n_heads": 2, "n_layers": 1, "ff_dim": 16, "max_frames": 8}
    settings.write_text(json.dumps({"train": train, "student": student}))
    capsys.readouterr()
    argv = ["train", str(store), str(split), str(tmp_path / "m"), "--settings", str(settings)]
    assert main(argv) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("geokd: epoch ")]
    assert [x.split(":")[1] for x in lines] == [" epoch 1/3", " epoch 2/3", " epoch 3/3"]
    assert all("loss " in x and " s left" in x and "val accuracy" in x for x in lines), lines
    assert not any("test" in x for x in lines)  # the log never shows the test split's score
    assert main(["-q", *argv[:3], str(tmp_path / "q"), *argv[4:]]) == 0
    assert "geokd: epoch" not in capsys.readouterr().err


def test_train_several_seeds_in_one_command(fake_utd, tmp_path, capsys):
    import json

    store, split = tmp_path / "u.parquet", tmp_path / "split.tsv"
    main(["ingest", "utd-mhad", str(fake_utd), str(store)])
    main(["split", str(store), str(split), "--train", "1", "2", "--test", "3"])
    settings = tmp_path / "train.json"
    student = {"d_model": 8, "n_heads": 2, "n_layers": 1, "ff_dim": 16, "max_frames": 8}
    settings.write_text(json.dumps({"train": {"epochs": 2, "batch_size": 4}, "student": student}))
    outs = [str(tmp_path / f"m{s}") for s in (3, 4)]
    argv = ["train", str(store), str(split), *outs, "--seed", "3", "4", "--settings", str(settings)]
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "transformer seed 3: test accuracy" in err and "transformer seed 4: test" in err
    for seed, out in zip((3, 4), outs, strict=True):
        metrics = json.loads((tmp_path / out / "metrics.json").read_text())
        timings = json.loads((tmp_path / out / "timings.json").read_text())
        assert metrics["seed"] == seed and timings["trained_with"]["seeds"] == [3, 4]
    assert main([*argv[:5], "--seed", "3", "4", "5", "--settings", str(settings)]) == 2
    assert "geokd: error: --seed: 3 seed(s) for 2 folder(s)" in capsys.readouterr().err


def test_a_distance_block_logs_its_size_and_speed(fake_utd, tmp_path, capsys):
    store, split = tmp_path / "u.parquet", tmp_path / "split.tsv"
    main(["ingest", "utd-mhad", str(fake_utd), str(store)])
    main(["split", str(store), str(split), "--train", "1", "2", "--test", "3"])
    capsys.readouterr()
    out = tmp_path / "b.npy"
    argv = ["distances", "block", str(store), str(split), str(out), "--block", "0", "0"]
    assert main([*argv, "--block-size", "4"]) == 0
    err = capsys.readouterr().err
    assert "geokd: block (0, 0) of " in err and "4 x 4 sequences" in err
    assert "frame pairs/s" in err
