"""`snakemake results/report.html` rebuilds what the report stands on when it is lost: a
checkpoint or its sidecar deleted after a finished run is trained again, a deleted table
written again (a copy of the shared tiny run: tests/conftest.py, tiny_run)."""

from __future__ import annotations

import io
import shutil

import pytest
import torch

from geokd.cli import main
from geokd.report.missing import mark_missing, missing_files
from tests.helpers.faults import clone_run
from tests.helpers.workflow import snakemake

pytestmark = pytest.mark.workflow

RUNS = "results/tiny/paper/models"


def _weights(path) -> dict:
    state = torch.load(io.BytesIO(path.read_bytes()), weights_only=True)["state_dict"]
    return {k: v.clone() for k, v in state.items()}


def test_the_report_target_rebuilds_a_lost_checkpoint_sidecar_and_table(tiny_run, tmp_path):
    work = clone_run(tiny_run, tmp_path)
    model = work / RUNS / "distilled/seed0/model.pt"
    sidecar = work / RUNS / "transformer/seed0/model.pt.json"
    before = _weights(model)
    report = work / "results/report.html"
    report_time = report.stat().st_mtime_ns
    table = work / "results/tables/accuracy.tex"
    for lost in (model, sidecar, table):
        lost.unlink()
    assert main(["predict", str(model), str(work / "data/interim/tiny/sequences.parquet"),
                 "--out", str(tmp_path / "p.csv")]) == 2  # fmt: skip
    dry = snakemake(work, "-n", "results/report.html")
    out = dry.stdout + dry.stderr
    assert "Nothing to be done" not in out
    assert f"Missing output files: {RUNS}/distilled/seed0/model.pt" in out
    assert f"{RUNS}/transformer/seed0/model.pt.json" in out
    marker = (work / ".snakemake/geokd/report/missing.txt").read_text()
    assert f"{RUNS}/distilled/seed0/model.pt\n" in marker
    snakemake(work, "results/report.html")
    assert model.is_file() and sidecar.is_file() and table.is_file()
    after = _weights(model)
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)  # trained again, same seed
    assert report.stat().st_mtime_ns > report_time
    out = tmp_path / "predictions.csv"
    data = str(work / "data/interim/tiny/sequences.parquet")
    assert main(["predict", str(model), data, "--out", str(out)]) == 0
    assert main(["verify", str(work / RUNS)]) == 0
    done = snakemake(work, "-n", "results/report.html")
    assert "Nothing to be done" in done.stdout + done.stderr


def test_the_marker_is_rewritten_only_when_something_is_missing(tmp_path):
    present = tmp_path / "a.txt"
    present.write_text("x")
    marker = tmp_path / "state" / "missing.txt"
    assert mark_missing([present], marker) == str(marker)
    assert marker.stat().st_mtime_ns == 0  # created, older than any output
    assert mark_missing([present, present], marker) and marker.stat().st_mtime_ns == 0
    lost = tmp_path / "b.txt"
    mark_missing([present, lost, lost], marker)
    assert marker.stat().st_mtime_ns > present.stat().st_mtime_ns - 10**9
    assert marker.read_text().splitlines()[1:] == [str(lost)]
    assert missing_files([present, lost, lost]) == [str(lost)]
    stamp = marker.stat().st_mtime_ns
    lost.write_text("back")
    mark_missing([present, lost], marker)
    assert marker.stat().st_mtime_ns == stamp  # nothing missing: left alone
    shutil.rmtree(tmp_path / "state")
    mark_missing([present, lost], marker)
    assert marker.stat().st_mtime_ns == 0
