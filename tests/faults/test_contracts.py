"""Wrong but well-formed inputs: what a file promises is checked, not only its checksum.

- Distance matrices and blocks with a matching checksum sidecar that break the distance
  contract (asymmetric where the sidecar says symmetric, negative, non-finite, a non-zero
  diagonal where it must be zero) are refused by every reader, naming the file and the first
  bad entry (issue 15, item 5).
- A degenerate teacher (near-uniform soft labels, leave-one-out accuracy near chance) is
  flagged in its diagnostics, warned about in the log and shown in the report (item 6).
- Raw data oddities: dangling and looping symlinks named like raw files, the same recording
  under two names, SIGNUM manifest paths outside the manifest's folder, a NaN sign in a
  manifest written by pandas, blank manifest lines; temporaries of killed block writers and
  missing blocks at assembly (item 7).
"""

from __future__ import annotations

import html
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geokd.checksum import verify_tree
from geokd.cli import main
from geokd.distances.shards import load_matrix, read_npy_checked, write_npy_with_sidecar
from geokd.errors import InputError
from tests.helpers.utd import write_mat

# ---------------------------------------------------------------------------------------------
# Item 5: the distance contract on every load
# ---------------------------------------------------------------------------------------------

_SIDE_KEYS = ("sha256", "size", "shape", "dtype")


def _rewrite_consistently(path: Path, change) -> None:
    """Change the matrix/block at ``path`` and write it back with a matching sidecar."""
    D, side = read_npy_checked(path)
    D = D.copy()
    change(D)
    write_npy_with_sidecar(path, D, {k: v for k, v in side.items() if k not in _SIDE_KEYS})


def _asymmetric(D):
    D[1, 4] += 0.125


def _negative(D):
    D[2, 5] = D[5, 2] = -0.5


def _diagonal(D):
    D[3, 3] = 0.25


def _nan(D):
    D[1, 2] = D[2, 1] = np.nan


def _inf(D):
    D[0, 6] = D[6, 0] = np.inf


#: break -> (change, the message's pattern for the train x train matrix)
SQUARE_BREAKS = {
    "asymmetric": (_asymmetric, r"D\[1, 4\] = .* but D\[4, 1\] = .*must be symmetric"),
    "negative": (_negative, r"D\[2, 5\] = -0\.5.*non-negative"),
    "non-zero diagonal": (_diagonal, r"D\[3, 3\] = 0\.25.*zero diagonal"),
    "NaN": (_nan, r"D\[1, 2\] = nan.*finite"),
    "+inf": (_inf, r"D\[0, 6\] = inf.*finite"),
}


def _copy_project(project, tmp_path) -> dict[str, Path]:
    root = tmp_path / "p"
    shutil.copytree(project["root"], root)
    return {k: root / v.relative_to(project["root"]) for k, v in project.items() if k != "root"}


@pytest.mark.parametrize("kind", SQUARE_BREAKS)
def test_a_checksum_consistent_but_wrong_train_matrix_is_refused(
    project, tmp_path, capsys, kind, ledger
):
    p = _copy_project(project, tmp_path)
    change, pattern = SQUARE_BREAKS[kind]
    _rewrite_consistently(p["tt"], change)
    ledger.bad_input()
    with pytest.raises(InputError, match=pattern) as err:
        load_matrix(p["tt"])
    assert err.value.where == str(p["tt"])
    # the teacher (and so every reader of load_aligned) refuses it, writing nothing
    out = tmp_path / "out" / "softmax.parquet"
    capsys.readouterr()
    rc = main(["teacher", str(p["tt"]), str(p["split"]), str(out), str(out.with_suffix(".json"))])
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err_lines) == 1 and str(p["tt"]) in err_lines[0], err_lines
    assert not out.parent.exists() or not any(out.parent.iterdir())
    # geokd verify reports it
    _, damaged = verify_tree(p["tt"].parent)
    assert p["tt"] in [path for path, _ in damaged], damaged


@pytest.mark.parametrize("kind", ["negative", "NaN"])
def test_a_checksum_consistent_but_wrong_test_matrix_is_refused_by_knn(
    project, tmp_path, capsys, kind, ledger
):
    p = _copy_project(project, tmp_path)

    def change(D):
        D[1, 2] = -0.5 if kind == "negative" else np.nan

    _rewrite_consistently(p["et"], change)
    ledger.bad_input()
    out = tmp_path / "out" / "knn.json"
    capsys.readouterr()
    rc = main(["knn", str(p["et"]), str(p["split"]), str(out), "--k-max", "3"])
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err_lines) == 1, err_lines
    assert str(p["et"]) in err_lines[0] and "D[1, 2]" in err_lines[0]
    assert not out.exists()
    _, damaged = verify_tree(p["et"])
    assert [path for path, _ in damaged] == [p["et"]]


def _assemble_argv(p, out: Path) -> list[str]:
    blocks = sorted((p["tt"].parent / "train-train").glob("block_*.npy"))
    argv = ["distances", "assemble", p["store"], p["split"], out, *blocks]
    argv += ["--query", "train", "--reference", "train", "--block-size", "8"]
    return [str(a) for a in argv]


@pytest.mark.parametrize("kind", ["asymmetric", "non-zero diagonal", "negative"])
def test_a_checksum_consistent_but_wrong_diagonal_block_is_refused_by_assemble(
    project, tmp_path, capsys, kind, ledger
):
    p = _copy_project(project, tmp_path)
    _rewrite_consistently(p["block"], SQUARE_BREAKS[kind][0])
    ledger.bad_input()
    out = tmp_path / "out" / "tt.npy"
    capsys.readouterr()
    rc = main(_assemble_argv(p, out))
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err_lines) == 1, err_lines
    assert str(p["block"]) in err_lines[0] and "D[" in err_lines[0]
    assert not out.exists()
    _, damaged = verify_tree(p["block"])
    assert [path for path, _ in damaged] == [p["block"]]


def test_the_kernel_writes_exactly_symmetric_matrices_with_zero_diagonal(project):
    """Why symmetry is checked exactly: the assembled matrix is symmetric bit for bit."""
    D, side = load_matrix(project["tt"])
    assert side["symmetric"] is True
    assert np.array_equal(D, D.T) and not np.diagonal(D).any() and (D >= 0).all()


# ---------------------------------------------------------------------------------------------
# Item 6: degenerate teachers are flagged, logged and reported
# ---------------------------------------------------------------------------------------------


def _teacher(p, tmp_path, capsys, name: str, **settings) -> tuple[dict, str]:
    from tests.helpers.faults import settings_file

    out = tmp_path / "teacher" / f"{name}.parquet"
    diag = out.with_suffix(".json")
    argv = ["teacher", p["tt"], p["split"], out, diag, "--settings", settings_file(settings)]
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 0
    return json.loads(diag.read_text()), capsys.readouterr().err


@pytest.mark.parametrize(
    "settings",
    [
        {"method": "softmax", "temperature": 1000.0},
        {"method": "nngk", "k": 100, "sigma": 1e6, "floor": 0.5},
    ],
    ids=["softmax T=1000", "nngk wide"],
)
def test_a_degenerate_teacher_is_flagged_warned_and_reported(
    project, tmp_path, capsys, settings, ledger
):
    from geokd.report.html import _Emitter
    from geokd.report.results import _teacher_html

    ledger.bad_input()
    diag, err = _teacher(project, tmp_path, capsys, settings["method"], **settings)
    assert diag["degenerate"] is True, diag
    assert diag["degenerate_reasons"] and any("entropy" in r for r in diag["degenerate_reasons"]), (
        diag
    )
    warning = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warning) == 1 and "degenerate teacher" in warning[0], err
    page = _teacher_html(tmp_path, {}, [], _Emitter(None, "x"))
    assert '<p class="warning">' in page and "degenerate teacher" in page
    assert html.escape(diag["degenerate_reasons"][0]) in page


def test_an_informative_teacher_is_not_flagged(project, tmp_path, capsys):
    from geokd.report.html import _Emitter
    from geokd.report.results import _teacher_html

    diag, err = _teacher(project, tmp_path, capsys, "softmax", method="softmax")
    assert diag["degenerate"] is False and diag["degenerate_reasons"] == []
    assert "WARNING" not in err
    page = _teacher_html(tmp_path, {}, [], _Emitter(None, "x"))
    assert "degenerate" not in page
    assert "softmax.parquet" not in page  # the soft labels' checksum sidecar is no teacher row


# ---------------------------------------------------------------------------------------------
# Item 7: raw data oddities
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def utd(tmp_path) -> Path:
    raw = tmp_path / "raw"
    raw.mkdir()
    for a in (1, 2):
        for s in (1, 2):
            write_mat(raw / f"a{a}_s{s}_t1_skeleton.mat", seed=10 * a + s)
    return raw


def _refused(argv: list, capsys, *names: str) -> str:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    for name in names:
        assert name in err[0], err
    return err[0]


@pytest.mark.parametrize("link", ["dangling", "loop"])
def test_a_broken_symlink_named_like_a_utd_file_is_an_error(utd, tmp_path, capsys, link, ledger):
    bad = utd / "a1_s3_t1_skeleton.mat"
    bad.symlink_to(utd / "gone.mat" if link == "dangling" else bad)
    ledger.bad_input()
    out = tmp_path / "utd.parquet"
    line = _refused(["ingest", "utd-mhad", utd, out], capsys, str(bad))
    assert ("dangling symlink" if link == "dangling" else "symlink loop") in line
    assert not out.exists()


@pytest.fixture
def signum(tmp_path) -> Path:
    from geokd.data.signum_synthetic import SignumSyntheticConfig, write_synthetic_signum

    raw = tmp_path / "sraw"
    write_synthetic_signum(
        raw, SignumSyntheticConfig(n_signs=2, n_signers=25, min_frames=6, max_frames=9)
    )
    return raw


def _manifest(raw: Path) -> pd.DataFrame:
    return pd.read_csv(raw / "manifest.csv", dtype=str, keep_default_na=False)


@pytest.mark.parametrize("link", ["dangling", "loop"])
def test_a_broken_symlink_as_a_signum_sample_is_an_error(signum, tmp_path, capsys, link, ledger):
    rel = _manifest(signum)["path"][3]
    sample = signum / rel
    sample.unlink()
    sample.symlink_to(signum / "gone.npy" if link == "dangling" else sample)
    ledger.bad_input()
    out = tmp_path / "s.parquet"
    line = _refused(["ingest", "signum", signum, out], capsys, rel)
    assert ("dangling symlink" if link == "dangling" else "symlink loop") in line
    assert not out.exists()


def test_the_same_utd_recording_under_two_names_is_an_error_unless_allowed(
    utd, tmp_path, capsys, ledger
):
    from tests.helpers.faults import settings_file

    shutil.copyfile(utd / "a1_s1_t1_skeleton.mat", utd / "a2_s5_t1_skeleton.mat")
    ledger.bad_input()
    out = tmp_path / "utd.parquet"
    line = _refused(["ingest", "utd-mhad", utd, out], capsys, "a01_s1_t1", "a02_s5_t1")
    assert "allow_duplicates" in line and not out.exists()
    allow = settings_file({"source": "utd_mhad", "allow_duplicates": True})
    assert main(["ingest", "utd-mhad", str(utd), str(out), "--settings", str(allow)]) == 0


def test_the_same_signum_recording_under_two_labels_is_an_error_unless_allowed(
    signum, tmp_path, capsys, ledger
):
    from geokd.data.signum import ingest

    table = _manifest(signum)
    # row 30 is another sign; give it row 0's file content under its own name
    shutil.copyfile(signum / table["path"][0], signum / table["path"][30])
    ledger.bad_input()
    out = tmp_path / "s.parquet"
    with pytest.raises(InputError, match="allow_duplicates") as err:
        ingest(signum, out)
    ids = pd.Series(["sign001_s01_r1", "sign002_s06_r1"])
    assert all(i in str(err.value) for i in ids), (str(err.value), table.iloc[[0, 30]])
    assert not out.exists()
    ingest(signum, out, allow_duplicates=True)


def test_a_signum_path_outside_the_manifest_folder_is_refused_unless_allowed(
    signum, tmp_path, ledger
):
    from geokd.data.signum import ingest

    table = _manifest(signum)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.move(signum / table["path"][2], outside / "x.npy")
    table.loc[2, "path"] = "../elsewhere/x.npy"
    table.to_csv(signum / "manifest.csv", index=False)
    ledger.bad_input()
    out = tmp_path / "s.parquet"
    with pytest.raises(InputError, match="manifest.csv:4.*outside the manifest's folder"):
        ingest(signum, out)
    assert not out.exists()
    ingest(signum, out, allow_outside_paths=True)


def test_a_nan_sign_in_a_pandas_written_manifest_names_its_line(signum, tmp_path, ledger):
    from geokd.data.signum import ingest

    table = pd.read_csv(signum / "manifest.csv")
    table["sign"] = table["sign"].astype(float)
    table.loc[7, "sign"] = np.nan  # pandas writes 1.0, 2.0, ... and an empty cell
    table.to_csv(signum / "manifest.csv", index=False)
    ledger.bad_input()
    with pytest.raises(InputError, match=r"manifest.csv:9 .*unknown sign ''"):
        ingest(signum, tmp_path / "s.parquet")


def test_blank_manifest_lines_do_not_shift_line_numbers(signum, tmp_path, ledger):
    from geokd.data.signum import ingest

    lines = (signum / "manifest.csv").read_text().splitlines()
    cells = lines[6].split(",")
    lines[6] = ",".join([cells[0], "NaN", *cells[2:]])  # file line 8 once a blank line is in
    (signum / "manifest.csv").write_text("\n".join([*lines[:3], "", *lines[3:]]) + "\n")
    ledger.bad_input()
    with pytest.raises(InputError, match=r"manifest.csv:8 .*unknown sign 'NaN'"):
        ingest(signum, tmp_path / "s.parquet")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_assemble_removes_temporaries_of_killed_block_writers(project, tmp_path, ledger):
    p = _copy_project(project, tmp_path)
    folder = p["tt"].parent / "train-train"
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname()) or "host"
    pid = _dead_pid()
    stale = [
        folder / f".block_0_0.npy.{host}-{pid}.k1ll3d.tmp",  # a finished block, never rewritten
        folder / f".block_0_0.npy.json.{host}-{pid}.k1ll3d.tmp",
        folder / f".block_7_7.npy.{host}-{pid}.0ldpl4n.tmp",  # a block of an older plan
    ]
    for path in stale:
        path.write_bytes(b"partial")
    live = folder / f".block_0_1.npy.{host}-{os.getpid()}.alive.tmp"  # a live writer: kept
    live.write_bytes(b"being written")
    ledger.fault(len(stale))
    assert main(_assemble_argv(p, tmp_path / "out" / "tt.npy")) == 0
    assert not [path for path in stale if path.exists()]
    assert live.exists()


def test_a_missing_block_at_assembly_is_named_with_what_to_do(project, tmp_path, capsys, ledger):
    p = _copy_project(project, tmp_path)
    argv = _assemble_argv(p, tmp_path / "out" / "tt.npy")
    p["block2"].unlink()
    ledger.fault()
    line = _refused(argv, capsys, str(p["block2"]))
    assert "distance block" in line and "rerun" in line


def test_skip_bad_in_the_settings_file_is_honoured(utd, tmp_path, ledger):
    """``ingest: {skip_bad: true}`` reaches the step through --settings (the flag's unset
    default no longer overrides it)."""
    from tests.helpers.faults import settings_file

    (utd / "a1_s3_t1_skeleton.mat").write_bytes(b"not a MATLAB file")
    (utd / "a2_s3_t1_skeleton.mat").symlink_to(utd / "gone.mat")
    ledger.bad_input(2)
    out = tmp_path / "utd.parquet"
    skip = settings_file({"source": "utd_mhad", "skip_bad": True})
    assert main(["ingest", "utd-mhad", str(utd), str(out), "--settings", str(skip)]) == 0
    rejected = Path(f"{out}.rejected.tsv").read_text()
    assert "a1_s3_t1_skeleton.mat\tnot a readable MATLAB file" in rejected
    assert "a2_s3_t1_skeleton.mat\tdangling symlink" in rejected
