"""Bad input everywhere: every subcommand on malformed files, contract-breaking stores, bad
split tables, bad options and numbers: one clear error naming the thing and the cause, a
non-zero exit status, and no output (not even a partial or temporary one).

Cited, not repeated here: malformed UTD-MHAD raw files and a missing raw folder
(tests/test_utd_mhad.py, tests/test_cli.py), a config that fails the schema and a missing raw
folder in the workflow (tests/test_workflow.py), property-based checks of the distance API
(tests/test_distances.py and tests/faults/test_distance_properties.py).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.io

from geokd.cli import main
from geokd.data.store import SCHEMA
from geokd.distances.shards import load_matrix
from tests.helpers.faults import (
    TRAIN_SETTINGS,
    make_workdir,
    settings_file,
    snakemake,
    summarize_argv,
)

# ---------------------------------------------------------------------------------------------
# Bad stores: the project's store with one rule of the data contract broken
# ---------------------------------------------------------------------------------------------


def _rewrite(store: Path, out: Path, change: Callable[[dict], None]) -> Path:
    table = pq.read_table(store)
    cols = {name: table.column(name).to_pylist() for name in table.column_names}
    change(cols)
    arrays = [pa.array(cols[f.name], f.type) for f in SCHEMA]
    pq.write_table(pa.Table.from_arrays(arrays, schema=table.schema), out)
    return out


def _set_frame_value(value):
    def change(c):
        c["frames"][3][5] = value

    return change


def _empty_sequence(c):
    c["frames"][2], c["n_frames"][2] = [], 0


def _fewer_landmarks(c):
    t = c["n_frames"][4]
    c["frames"][4] = list(np.asarray(c["frames"][4]).reshape(t, 20, 3)[:, :19].ravel())
    c["n_landmarks"][4] = 19


def _negative_label(c):
    c["label"][1] = -1


def _duplicate_id(c):
    c["sequence_id"][5] = c["sequence_id"][6]


def _short_frames(c):
    c["frames"][0] = c["frames"][0][:-3]


def _garbage(store, out):
    out.write_bytes(b"PAR1 this is not a parquet file PAR1")
    return out


def _truncated(store, out):
    out.write_bytes(store.read_bytes()[: store.stat().st_size // 2])
    return out


def _plain_parquet(store, out):
    pq.write_table(pa.table({"x": [1, 2]}), out)
    return out


BAD_STORES = {
    # name: (builder(store, out) -> path, what the message must say)
    "NaN landmark": (lambda s, o: _rewrite(s, o, _set_frame_value(float("nan"))), "non-finite"),
    "inf landmark": (lambda s, o: _rewrite(s, o, _set_frame_value(float("inf"))), "non-finite"),
    "-inf landmark": (lambda s, o: _rewrite(s, o, _set_frame_value(-float("inf"))), "non-finite"),
    "zero-length sequence": (lambda s, o: _rewrite(s, o, _empty_sequence), "no frames"),
    "mismatched landmark counts": (
        lambda s, o: _rewrite(s, o, _fewer_landmarks),
        "mismatched landmark counts",
    ),
    "unknown label": (lambda s, o: _rewrite(s, o, _negative_label), "unknown label"),
    "duplicate sequence id": (lambda s, o: _rewrite(s, o, _duplicate_id), "duplicate"),
    "frames shorter than n_frames": (lambda s, o: _rewrite(s, o, _short_frames), "frames length"),
    "not a parquet file": (_garbage, "not a readable Parquet"),
    "truncated parquet": (_truncated, "not a readable Parquet"),
    "empty file": (lambda s, o: (o.write_bytes(b""), o)[1], "not a readable Parquet"),
    "parquet of something else": (_plain_parquet, "not a geokd sequence store"),
    "missing file": (lambda s, o: o, "sequence store not found"),
}

#: The subcommands that read a store's sequences, as the rules run them (OUT: the output).
STORE_READERS = {
    "split": lambda p, s, out: ["split", s, out / "split.tsv", "--train", 1, 2, "--test", 3, 4],
    "distances block": lambda p, s, out: [
        "distances",
        "block",
        s,
        p["split"],
        out / "b.npy",
        "--block",
        0,
        0,
        "--query",
        "train",
        "--reference",
        "train",
        "--block-size",
        100,
    ],
    "knn-latency": lambda p, s, out: ["knn-latency", s, p["split"], out / "lat.json"],
    "train": lambda p, s, out: ["train", s, p["split"], out / "run", "--settings", TRAIN_SETTINGS],
    "report": lambda p, s, out: [
        "report",
        out / "r.html",
        "--dataset",
        f"tiny={s}",
        "--split",
        f"tiny/paper={p['split']}",
    ],
}


def _run(argv, capsys) -> tuple[int, list[str]]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err.strip().splitlines()


def _assert_refused(rc, err, out: Path, *needles: str):
    assert rc == 2, (rc, err)
    assert len(err) == 1 and err[0].startswith("geokd: error: "), err
    for needle in needles:
        assert needle in err[0], (needle, err)
    leftovers = [p for p in out.rglob("*")] if out.exists() else []
    assert not leftovers, f"outputs written: {leftovers}"


@pytest.mark.parametrize("reader", STORE_READERS)
@pytest.mark.parametrize("bad", BAD_STORES)
def test_every_store_reader_refuses_a_bad_store(project, tmp_path, capsys, bad, reader, ledger):
    build, cause = BAD_STORES[bad]
    store = build(project["store"], tmp_path / "bad.parquet")
    out = tmp_path / "out"
    ledger.bad_input()
    rc, err = _run(STORE_READERS[reader](project, store, out), capsys)
    _assert_refused(rc, err, out, str(store), cause)


# ---------------------------------------------------------------------------------------------
# Bad split tables
# ---------------------------------------------------------------------------------------------


def _edit_split(split: Path, out: Path, edit: Callable[[list[list[str]]], None]) -> Path:
    rows = [line.split("\t") for line in split.read_text().splitlines()]
    edit(rows)
    out.write_text("\n".join("\t".join(r) for r in rows) + "\n")
    return out


def _set(row: int, col: int, value: str):
    def edit(rows):
        rows[row][col] = value

    return edit


BAD_SPLITS = {
    "unknown label (negative)": (lambda s, o: _edit_split(s, o, _set(2, 1, "-3")), "unknown label"),
    "unknown label (text)": (lambda s, o: _edit_split(s, o, _set(2, 1, "walk")), "unknown label"),
    "unknown split name": (lambda s, o: _edit_split(s, o, _set(3, 4, "dev")), "unknown split"),
    "duplicate sequence id": (
        lambda s, o: _edit_split(s, o, _set(3, 0, "s")) and _edit_split(o, o, _set(4, 0, "s")),
        "duplicate",
    ),
    "missing column": (
        lambda s, o: _edit_split(s, o, lambda r: [x.pop(1) for x in r]),
        "missing columns",
    ),
    "binary garbage": (
        lambda s, o: (o.write_bytes(b"\x00\xff\xfe\x00" * 64), o)[1],
        "not a readable split table",
    ),
    "empty file": (lambda s, o: (o.write_bytes(b""), o)[1], "not a readable split table"),
    "missing file": (lambda s, o: o, "split table not found"),
}

SPLIT_READERS = {
    "distances block": lambda p, s, out: [
        "distances",
        "block",
        p["store"],
        s,
        out / "b.npy",
        "--block",
        0,
        0,
        "--query",
        "test",
        "--reference",
        "train",
        "--block-size",
        100,
    ],
    "distances assemble": lambda p, s, out: [
        "distances",
        "assemble",
        p["store"],
        s,
        out / "m.npy",
        *sorted((p["tt"].parent / "train-train").glob("block_*.npy")),
        "--query",
        "train",
        "--reference",
        "train",
        "--block-size",
        8,
    ],
    "teacher": lambda p, s, out: ["teacher", p["tt"], s, out / "t.parquet", out / "t.json"],
    "knn": lambda p, s, out: ["knn", p["et"], s, out / "knn.json"],
    "knn-latency": lambda p, s, out: ["knn-latency", p["store"], s, out / "lat.json"],
    "train": lambda p, s, out: ["train", p["store"], s, out / "run", "--settings", TRAIN_SETTINGS],
}


@pytest.mark.parametrize("reader", SPLIT_READERS)
@pytest.mark.parametrize("bad", BAD_SPLITS)
def test_every_split_reader_refuses_a_bad_split_table(
    project, tmp_path, capsys, bad, reader, ledger
):
    build, cause = BAD_SPLITS[bad]
    split = build(project["split"], tmp_path / "bad.tsv")
    out = tmp_path / "out"
    ledger.bad_input()
    rc, err = _run(SPLIT_READERS[reader](project, split, out), capsys)
    _assert_refused(rc, err, out, str(split), cause)


# ---------------------------------------------------------------------------------------------
# Bad options, numbers and the remaining inputs of each subcommand
# ---------------------------------------------------------------------------------------------


def _bad_json(tmp: Path, text: str) -> Path:
    path = tmp / "step.json"
    path.write_text(text)
    return path


OTHER = {
    # name: (argv(project, tmp, out), needles in the one error line)
    "teacher: --settings not JSON": (
        lambda p, t, o: [
            "teacher",
            p["tt"],
            p["split"],
            o / "t.parquet",
            o / "t.json",
            "--settings",
            settings_file("{temperature: 2"),
        ],
        ["settings", "not a readable settings file"],
    ),
    "teacher: --settings not an object": (
        lambda p, t, o: [
            "teacher",
            p["tt"],
            p["split"],
            o / "t.parquet",
            o / "t.json",
            "--settings",
            settings_file("[1, 2]"),
        ],
        ["settings", "JSON object"],
    ),
    "teacher: unknown parameter": (
        lambda p, t, o: [
            "teacher",
            p["tt"],
            p["split"],
            o / "t.parquet",
            o / "t.json",
            "--settings",
            settings_file('{"k": 3}'),
        ],
        ["softmax.k", "unknown setting"],
    ),
    "teacher: temperature 0": (
        lambda p, t, o: [
            "teacher",
            p["tt"],
            p["split"],
            o / "t.parquet",
            o / "t.json",
            "--settings",
            settings_file('{"temperature": 0}'),
        ],
        ["temperature must be > 0"],
    ),
    "teacher: a test x train matrix": (
        lambda p, t, o: ["teacher", p["et"], p["split"], o / "t.parquet", o / "t.json"],
        ["test-train.npy", "row_ids"],
    ),
    "knn: a train x train matrix": (
        lambda p, t, o: ["knn", p["tt"], p["split"], o / "knn.json"],
        ["train-train.npy", "row_ids"],
    ),
    "knn: missing matrix": (
        lambda p, t, o: ["knn", t / "nope.npy", p["split"], o / "knn.json"],
        ["nope.npy", "missing"],
    ),
    "distances block: block outside the plan": (
        lambda p, t, o: [
            "distances",
            "block",
            p["store"],
            p["split"],
            o / "b.npy",
            "--block",
            5,
            5,
            "--block-size",
            8,
        ],
        ["b.npy", "not part of the plan"],
    ),
    "distances block: unknown metric": (
        lambda p, t, o: [
            "distances",
            "block",
            p["store"],
            p["split"],
            o / "b.npy",
            "--block",
            0,
            0,
            "--block-size",
            8,
            "--metric",
            "cosine",
        ],
        ["unknown metric", "cosine"],
    ),
    "distances block: bad --param": (
        lambda p, t, o: [
            "distances",
            "block",
            p["store"],
            p["split"],
            o / "b.npy",
            "--block",
            0,
            0,
            "--block-size",
            8,
            "--param",
            "s1=big",
        ],
        ["s1=big", "NAME=NUMBER"],
    ),
    "distances assemble: a block missing": (
        lambda p, t, o: [
            "distances",
            "assemble",
            p["store"],
            p["split"],
            o / "m.npy",
            sorted((p["tt"].parent / "train-train").glob("block_*.npy"))[0],
            "--query",
            "train",
            "--reference",
            "train",
            "--block-size",
            8,
        ],
        ["m.npy", "block(s) missing"],
    ),
    "distances assemble: other block size": (
        lambda p, t, o: [
            "distances",
            "assemble",
            p["store"],
            p["split"],
            o / "m.npy",
            *sorted((p["tt"].parent / "train-train").glob("block_*.npy")),
            "--query",
            "train",
            "--reference",
            "train",
            "--block-size",
            4,
        ],
        ["block_", "other settings"],
    ),
    "distances assemble: a matrix given as a block": (
        lambda p, t, o: [
            "distances",
            "assemble",
            p["store"],
            p["split"],
            o / "m.npy",
            p["tt"],
            "--query",
            "train",
            "--reference",
            "train",
            "--block-size",
            100,
        ],
        ["train-train.npy", "not a distance block"],
    ),
    "train: distilled without soft labels": (
        lambda p, t, o: [
            "train",
            p["store"],
            p["split"],
            o / "run",
            "--mode",
            "distilled",
            "--settings",
            TRAIN_SETTINGS,
        ],
        ["soft_labels"],
    ),
    "train: soft labels of other ids": (
        lambda p, t, o: [
            "train",
            p["store"],
            t / "split2.tsv",
            o / "run",
            "--mode",
            "distilled",
            "--soft-labels",
            p["soft"],
            "--settings",
            TRAIN_SETTINGS,
        ],
        ["softmax.parquet", "not the training ids"],
    ),
    "train: unknown option section": (
        lambda p, t, o: [
            "train",
            p["store"],
            p["split"],
            o / "run",
            "--settings",
            settings_file('{"optimiser": {}}'),
        ],
        ["optimiser", "unknown section"],
    ),
    "train: unknown train option": (
        lambda p, t, o: [
            "train",
            p["store"],
            p["split"],
            o / "run",
            "--settings",
            settings_file('{"train": {"epoch": 3}}'),
        ],
        ["train.epoch", "unknown setting"],
    ),
    "train: zero epochs": (
        lambda p, t, o: [
            "train",
            p["store"],
            p["split"],
            o / "run",
            "--settings",
            settings_file('{"train": {"epochs": 0}}'),
        ],
        ["epochs"],
    ),
    "summarize: malformed JSON": (
        lambda p, t, o: summarize_argv(p, o, **{"--knn": [_bad_json(t, "{")]}),
        ["step.json", "not a readable JSON"],
    ),
    "summarize: a KNN result without per_k": (
        lambda p, t, o: summarize_argv(p, o, **{"--knn": [_bad_json(t, '{"metric": "x"}')]}),
        ["step.json", "missing key"],
    ),
    "summarize: a run that is a list": (
        lambda p, t, o: summarize_argv(p, o, **{"--run": [_bad_json(t, "[1, 2]")]}),
        ["step.json", "missing key"],
    ),
    "summarize: missing timings": (
        lambda p, t, o: summarize_argv(p, o, **{"--run-timings": []}),
        ["metrics.json", "latency"],
    ),
    "summarize: --settings not JSON": (
        lambda p, t, o: [*summarize_argv(p, o), "--settings", settings_file("{")],
        ["settings", "not a readable settings file"],
    ),
    "tables: malformed summary": (
        lambda p, t, o: ["tables", o, "--summary", f"tiny/paper={_bad_json(t, '{')}"],
        ["step.json", "not a readable summary JSON"],
    ),
    "tables: bad --summary": (
        lambda p, t, o: ["tables", o, "--summary", "no-equals-sign"],
        ["no-equals-sign", "--summary DATASET/PROTOCOL=PATH"],
    ),
    "report: missing results folder": (
        lambda p, t, o: [
            "report",
            o / "r.html",
            "--dataset",
            f"tiny={p['store']}",
            "--results",
            f"tiny/paper={t / 'nowhere'}",
        ],
        ["nowhere", "not found"],
    ),
    "report: --split of an unknown dataset": (
        lambda p, t, o: [
            "report",
            o / "r.html",
            "--dataset",
            f"tiny={p['store']}",
            "--split",
            f"other/paper={p['split']}",
        ],
        ["other/paper", "--dataset"],
    ),
    "ingest synthetic: one class": (
        lambda p, t, o: ["ingest", "synthetic", o / "s.parquet", "--n-classes", 1],
        ["n_classes"],
    ),
    "ingest synthetic: difficulty 3": (
        lambda p, t, o: ["ingest", "synthetic", o / "s.parquet", "--difficulty", 3],
        ["difficulty"],
    ),
    "ingest utd-mhad: missing raw folder": (
        lambda p, t, o: ["ingest", "utd-mhad", t / "no_raw", o / "u.parquet"],
        ["no_raw", "raw folder does not exist"],
    ),
    "ingest utd-mhad: NaN landmarks": (
        lambda p, t, o: ["ingest", "utd-mhad", _raw(t, np.nan), o / "u.parquet"],
        ["a1_s1_t1_skeleton.mat", "non-finite"],
    ),
    "ingest utd-mhad: zero frames": (
        lambda p, t, o: ["ingest", "utd-mhad", _raw(t, 0.0, frames=0), o / "u.parquet"],
        ["a1_s1_t1_skeleton.mat", "no frames"],
    ),
    "verify: nothing there": (
        lambda p, t, o: ["verify", t / "nothing"],
        ["nothing", "no such file or folder"],
    ),
}


def _raw(tmp: Path, value: float, frames: int = 4) -> Path:
    raw = tmp / "raw"
    raw.mkdir(exist_ok=True)
    scipy.io.savemat(raw / "a1_s1_t1_skeleton.mat", {"d_skel": np.full((20, 3, frames), value)})
    return raw


ARGPARSE = {
    "--block-size 0": ["distances", "block", "s", "t", "o.npy", "--block", 0, 0, "--block-size", 0],
    "--block-size -4": ["distances", "assemble", "s", "t", "o.npy", "b.npy", "--block-size", -4],
    "--block-size x": [
        "distances",
        "block",
        "s",
        "t",
        "o.npy",
        "--block",
        0,
        0,
        "--block-size",
        "x",
    ],
    "--k-max 0": ["knn", "m.npy", "t", "o.json", "--k-max", 0],
    "--n-queries 0": ["knn-latency", "s", "t", "o.json", "--n-queries", 0],
    "--method kde": ["teacher", "m.npy", "t", "o.parquet", "o.json", "--method", "kde"],
    "--mode kd": ["train", "s", "t", "o", "--mode", "kd"],
}


@pytest.mark.parametrize("case", OTHER)
def test_other_bad_inputs_are_named(project, tmp_path, capsys, case, ledger):
    build, needles = OTHER[case]
    (tmp_path / "split2.tsv").write_text(
        project["split"].read_text().replace("\ttrain\n", "\tval\n", 1)
    )
    out = tmp_path / "out"
    argv = build(project, tmp_path, out)
    ledger.bad_input()
    rc, err = _run(argv, capsys)
    _assert_refused(rc, err, out, *needles)


@pytest.mark.parametrize("case", ARGPARSE)
def test_bad_numbers_and_choices_stop_at_the_command_line(tmp_path, capsys, case, ledger):
    ledger.bad_input()
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in ARGPARSE[case]])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2
    option = case.split()[0]
    assert err[-1].startswith("geokd ") and f"argument {option}" in err[-1], err


# ---------------------------------------------------------------------------------------------
# Odd but valid input: one-frame sequences, every landmark at one point, a block size larger
# than the matrix. These must work, with finite results.
# ---------------------------------------------------------------------------------------------


def _one_frame(c):
    for i in range(len(c["n_frames"])):
        c["frames"][i], c["n_frames"][i] = c["frames"][i][:60], 1


def _collapsed_frames(c):
    for i in range(len(c["n_frames"])):  # the first frame: every landmark at one point
        c["frames"][i][:60] = [0.5, 1.0, 2.0] * 20


@pytest.mark.faults  # trains a student: a few seconds
@pytest.mark.parametrize("change", [_one_frame, _collapsed_frames], ids=["one frame", "collapsed"])
def test_odd_but_valid_sequences_run_through(project, tmp_path, capsys, change, ledger):
    store = _rewrite(project["store"], tmp_path / "odd.parquet", change)
    split, out = tmp_path / "split.tsv", tmp_path / "out"
    ledger.bad_input()
    steps = [
        ["split", store, split, "--train", 1, 2, "--test", 3, 4],
        [
            "distances",
            "block",
            store,
            split,
            out / "b.npy",
            "--block",
            0,
            0,
            "--query",
            "train",
            "--reference",
            "train",
            "--block-size",
            1000,
        ],  # larger than the matrix: one block
        [
            "distances",
            "assemble",
            store,
            split,
            out / "tt.npy",
            out / "b.npy",
            "--query",
            "train",
            "--reference",
            "train",
            "--block-size",
            1000,
        ],
        ["teacher", out / "tt.npy", split, out / "t.parquet", out / "t.json"],
        [
            "train",
            store,
            split,
            out / "run",
            "--mode",
            "distilled",
            "--soft-labels",
            out / "t.parquet",
            "--settings",
            TRAIN_SETTINGS,
        ],
    ]
    for argv in steps:
        rc, err = _run(argv, capsys)
        assert rc == 0, (argv[0], err)
    matrix, _ = load_matrix(out / "tt.npy")
    assert matrix.shape == (12, 12) and np.isfinite(matrix).all()
    assert np.array_equal(matrix, matrix.T) and not np.diag(matrix).any()
    metrics = json.loads((out / "run" / "metrics.json").read_text())
    assert 0 <= metrics["test"]["accuracy"] <= 1


# ---------------------------------------------------------------------------------------------
# The rules: a bad raw file stops the workflow at ingest, naming the file; nothing is written
# ---------------------------------------------------------------------------------------------

RAW_FAULTS = {
    "NaN landmarks": (np.full((20, 3, 5), np.nan), "non-finite"),
    "zero-length sequence": (np.zeros((20, 3, 0)), "no frames"),
    "mismatched landmark count": (np.zeros((25, 3, 5)), "shape (25, 3, 5)"),
    "not a MATLAB file": (b"garbage", "not a readable MATLAB file"),
}


@pytest.mark.faults
@pytest.mark.workflow
@pytest.mark.parametrize("fault", RAW_FAULTS)
def test_a_bad_raw_file_stops_the_workflow_naming_it(fake_utd, tmp_path, fault, ledger):
    content, cause = RAW_FAULTS[fault]
    bad = fake_utd / "a2_s9_t1_skeleton.mat"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        scipy.io.savemat(bad, {"d_skel": content})
    config = {
        "datasets": {
            "real": {
                "source": "utd_mhad",
                "raw_dir": str(fake_utd),
                "protocols": {"p": {"train": [1, 2], "test": [3]}},
            }
        },
        "training": {"seeds": [0], "train": {"epochs": 1}},
    }
    work = make_workdir(tmp_path, config)
    ledger.bad_input()
    done = snakemake(work, "results/real/p/summary.json", check=False)
    assert done.returncode != 0
    log = (work / "logs/ingest_utd_mhad/real.log").read_text().strip().splitlines()
    assert log[-1].startswith(f"geokd: error: {bad}") and cause in log[-1], log
    assert not (work / "data").exists() or not list((work / "data").rglob("*.parquet"))
    assert not (work / "results").exists()
    shutil.rmtree(work / ".snakemake", ignore_errors=True)
