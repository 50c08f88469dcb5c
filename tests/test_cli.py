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
