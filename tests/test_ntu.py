"""NTU RGB+D (issue 26): hand-made ``.skeleton`` files ingest exactly (one body, two bodies, a
frame with none), bad files are one line naming file and line, missing-skeleton samples are
rejected, the camera/setup protocols split, the 25-joint topology feeds the student's streams,
the synthetic NTU-format generator and the demo config plan, and no existing job slice moves."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from geokd.cli import main
from geokd.data import ntu, pyskl
from geokd.data.ntu_synthetic import NtuSyntheticConfig, write_synthetic_ntu
from geokd.data.skeleton import NTU_ACTIONS, NTU_BONES, NTU_JOINTS
from geokd.data.splits import assign_splits, write_split
from geokd.data.store import load_meta, load_sequences, read_info, write_store
from geokd.errors import InputError
from geokd.jobs import IngestJob, job_settings
from geokd.models.streams import bones_for, n_stream_features, stream_features
from geokd.settings import DatasetSettings, IngestSettings, SettingsError, resolve, resolve_all

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
DEMO = yaml.safe_load((ROOT / "config/ntu_demo.yaml").read_text())


# ------------------------------------------------------------------ hand-made .skeleton files
def joint_text(seed: int, shift: float = 0.0) -> list[list[str]]:
    """25 joint lines' tokens: x, y, z written in several decimal forms, then 9 more values."""
    g = np.random.default_rng(seed)
    forms = ("{:.7g}", "{:.3f}", "{:.6e}", "{!r}")
    rows = []
    for k in range(25):
        xyz = g.normal(size=3) * 0.3 + (shift, 0.0, 3.0)
        rows.append([forms[(k + i) % 4].format(float(v)) for i, v in enumerate(xyz)]
                    + ["256.5", "212", "960.1", "540", "0.9", "0", "0.1", "0", "2"])  # fmt: skip
    return rows


def write_skeleton(path: Path, frames: list[list[tuple[int, list[list[str]]]]]) -> Path:
    """A ``.skeleton`` file: per frame a list of (body ID, 25 joint token rows)."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, rows in bodies:
            lines += [f"{body_id} 0 1 2 1 2 0 0.01 -0.02 2", str(len(rows))]
            lines += [" ".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def xyz(rows: list[list[str]]) -> np.ndarray:
    """The exact values of a joint block's x, y, z (Python's float of the text)."""
    return np.array([[float(t) for t in r[:3]] for r in rows])


A, B = 72057594037931101, 72057594037931102  # two Kinect tracking IDs


@pytest.fixture
def raw(tmp_path: Path) -> dict:
    """A folder of three hand-made files: one body (3 frames), two bodies with a frame with
    none in the middle (B moves more than A), and a missing-skeleton sample."""
    folder = tmp_path / "raw"
    folder.mkdir()
    one = [joint_text(t) for t in range(3)]
    write_skeleton(folder / "S001C002P003R001A013.skeleton", [[(A, r)] for r in one])
    a = [joint_text(10), joint_text(10), None, joint_text(11)]  # A barely moves: 10, 10, -, 11
    b = [joint_text(20, 1.0), joint_text(21, 1.0), None, None]  # B: large jumps, then gone
    frames = [
        [(A, a[0]), (B, b[0])],
        [(B, b[1]), (A, a[1])],  # the order in a frame does not matter
        [],  # no body
        [(A, a[3])],
    ]
    write_skeleton(folder / "S017C001P040R002A050.skeleton", frames)
    write_skeleton(folder / "S001C001P001R001A001.skeleton", [[], [], []])
    return {"folder": folder, "one": one, "a": a, "b": b}


def by_id(path: Path) -> tuple[dict, pd.DataFrame]:
    seqs, meta = load_sequences(path)
    return dict(zip(meta["sequence_id"], seqs, strict=True)), meta


def test_one_and_two_body_files_ingest_exactly_with_their_keys(raw, tmp_path):
    out = tmp_path / "store.parquet"
    n, rejected = ntu.ingest(raw["folder"], out, bodies=1)
    assert n == 2 and [r.source for r in rejected] == ["S001C001P001R001A001.skeleton"]
    seqs, meta = by_id(out)
    np.testing.assert_array_equal(
        seqs["S001C002P003R001A013"], np.stack([xyz(r) for r in raw["one"]])
    )
    row = meta.set_index("sequence_id").loc["S017C001P040R002A050"]
    assert (row.label, row.label_name, row.subject, row.trial, row.camera, row.setup) == (
        49, NTU_ACTIONS[49], 40, 2, 1, 17)  # fmt: skip
    first = meta.set_index("sequence_id").loc["S001C002P003R001A013"]
    assert (first.label, first.subject, first.camera, first.setup) == (12, 3, 2, 1)
    # bodies=1: B moves most; it is present in frames 1 and 2 only, so 2 frames are kept
    np.testing.assert_array_equal(
        seqs["S017C001P040R002A050"], np.stack([xyz(raw["b"][0]), xyz(raw["b"][1])])
    )
    info = read_info(out)
    assert info.landmark_names == list(NTU_JOINTS) and info.units == "m"
    facts = info.source_info
    assert facts["frames_without_body"] == 1 and facts["frames_dropped"] == 2
    assert facts["missing_skeleton_samples"] == 1
    table = pd.read_csv(f"{out}.rejected.tsv", sep="\t")
    assert table["source"].tolist() == ["S001C001P001R001A001.skeleton"]
    assert "missing skeleton" in table["reason"][0] and "no body in any" in table["reason"][0]


def test_two_bodies_store_50_landmarks_the_present_one_repeated(raw, tmp_path):
    out = tmp_path / "two.parquet"
    ntu.ingest(raw["folder"], out, bodies=2)
    seqs, _ = by_id(out)
    two = seqs["S017C001P040R002A050"]
    a, b = raw["a"], raw["b"]
    expected = np.stack([
        np.concatenate([xyz(b[0]), xyz(a[0])]),  # the more active body first
        np.concatenate([xyz(b[1]), xyz(a[1])]),
        np.concatenate([xyz(a[3]), xyz(a[3])]),  # B absent: A in its place; frame 3 dropped
    ])  # fmt: skip
    np.testing.assert_array_equal(two, expected)
    single = seqs["S001C002P003R001A013"]  # one body only: repeated
    np.testing.assert_array_equal(single[:, :25], single[:, 25:])
    info = read_info(out)
    assert len(info.landmark_names) == 50 and info.landmark_names[25] == "body2_spine_base"
    assert len(info.bones) == 48 and (25, 26) in info.bones
    assert info.source_info["bodies"] == 2 and "repeated" in info.source_info["second_body"]


def test_the_motion_rule_picks_the_most_active_body():
    still = np.zeros((25, 3))
    frames = [[(1, still), (2, still)], [(1, still + 0.01), (2, still + 0.5)], [(1, still)]]
    seq, dropped, empty = ntu.select_bodies(frames, 1)
    assert dropped == 1 and empty == 0 and np.allclose(seq[1], 0.5)
    seq2, _, _ = ntu.select_bodies(frames, 2)
    assert seq2.shape == (3, 50, 3) and np.allclose(seq2[2, 25:], 0.0)  # 2 absent: 1 repeated


@pytest.mark.parametrize(
    ("edit", "line", "words"),
    [
        (lambda t: "\n".join(t.splitlines()[:40]) + "\n", 40, "truncated file"),
        (lambda t: t.replace("\n25\n", "\n24\n", 1), 4, "expected 25 joints (Kinect v2)"),
        (lambda t: t.replace("256.5", "2x6.5", 1), 5, "non-numeric value '2x6.5'"),
        (lambda t: t.replace("\n1\n", "\none\n", 1), 2, "the number of bodies"),
        (lambda t: t + "junk\n", 86, "unexpected content after the last of 3 frames"),
        (lambda t: t.replace(t.splitlines()[4], "0.1 0.2", 1), 5, "expected x y z"),
    ],
)  # fmt: skip
def test_a_malformed_file_is_one_line_naming_file_and_line(
    raw, tmp_path, capsys, edit, line, words
):
    path = raw["folder"] / "S001C002P003R001A013.skeleton"
    path.write_text(edit(path.read_text()))
    out = tmp_path / "bad.parquet"
    assert main(["ingest", "ntu", str(raw["folder"]), str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"geokd: error: {path}:{line}: "), err
    assert words in err[0]
    assert not out.exists() and not Path(f"{out}.rejected.tsv").exists()
    assert main(["ingest", "ntu", str(raw["folder"]), str(out), "--skip-bad"]) == 0
    table = pd.read_csv(f"{out}.rejected.tsv", sep="\t")
    assert path.name in table["source"].tolist()
    reason = table.set_index("source")["reason"][path.name]
    assert reason.startswith(f"line {line}: ") and words in reason
    assert len(load_meta(out)) == 1  # the two-body file; the missing skeleton is rejected too


def test_a_name_that_does_not_parse_and_out_of_range_numbers(raw, tmp_path, capsys):
    bad = raw["folder"] / "S001C002P003R001A013_copy.skeleton"
    bad.write_text("0\n")
    out = tmp_path / "x.parquet"
    assert main(["ingest", "ntu", str(raw["folder"]), str(out)]) == 2
    assert "does not match 'SsssCcccPpppRrrrAaaa.skeleton'" in capsys.readouterr().err
    bad.unlink()
    for name, words in (("S001C004P001R001A001", "camera 4 outside 1..3"),
                        ("S001C001P001R001A121", "action 121 outside 1..120")):  # fmt: skip
        with pytest.raises(InputError, match=words):
            ntu.parse_name(Path(f"{name}.skeleton"))
    empty = raw["folder"] / "S001C001P001R001A002.skeleton"
    empty.write_text("\n")
    with pytest.raises(InputError, match="empty file"):
        ntu.read_skeleton(empty)
    only = tmp_path / "empty_only"
    only.mkdir()
    write_skeleton(only / "S001C001P001R001A001.skeleton", [[]])
    with pytest.raises(InputError, match="no readable sequences"):
        ntu.ingest(only, out)


def test_values_are_the_text_values_exactly():
    """numpy's text conversion is Python's float (correctly rounded) for every form used."""
    tokens = ["0.1", "-3.785877", "1e-7", "2.5E+00", "0.30000000000000004", "-0", "123456.789"]
    assert np.array(tokens, dtype=np.float64).tolist() == [float(t) for t in tokens]


# ----------------------------------------------------------------------- protocols and store
def test_camera_and_setup_protocols_split_and_old_stores_still_load(raw, tmp_path):
    store = tmp_path / "s.parquet"
    ntu.ingest(raw["folder"], store)
    meta = load_meta(store)
    assert {"camera", "setup"} <= set(meta.columns)
    view = assign_splits(meta, {"by": "camera", "train": [2], "test": [1]})
    assert view.set_index("sequence_id")["split"].to_dict() == {
        "S001C002P003R001A013": "train", "S017C001P040R002A050": "test"}  # fmt: skip
    assert list(view.columns) == ["sequence_id", "label", "subject", "trial", "split"]
    setup = write_split(store, tmp_path / "x.tsv", {"by": "setup", "train": [17], "test": [1]})
    assert setup.set_index("sequence_id")["split"]["S017C001P040R002A050"] == "train"
    # a store without the optional columns (every older store) loads as before ...
    seqs, old = load_sequences(store)
    plain = tmp_path / "plain.parquet"
    write_store(plain, seqs, old.drop(columns=["camera", "setup"]), read_info(store))
    assert "camera" not in load_meta(plain).columns
    assert len(load_sequences(plain)[0]) == 2
    # ... and a camera protocol on it is refused, naming what is missing
    with pytest.raises(InputError, match="no 'camera' column"):
        write_split(plain, tmp_path / "y.tsv", {"by": "camera", "train": [2], "test": [1]})


def test_the_standard_protocols():
    p = ntu.PROTOCOLS
    assert len(p["ntu60_xsub"]["train"]) == 20 and len(p["ntu60_xsub"]["test"]) == 20
    assert len(p["ntu120_xsub"]["train"]) == 53 and len(p["ntu120_xsub"]["test"]) == 53
    assert p["ntu60_xview"] == {"by": "camera", "train": [2, 3], "test": [1]}
    assert p["ntu120_xset"]["train"] == list(range(2, 33, 2))
    for protocol in p.values():  # each is a valid config protocol of an ntu dataset
        config = _config(**protocol)
        jsonschema.validate(config, SCHEMA)
        resolve(config, "n")


def _config(**protocol) -> dict:
    return {
        "datasets": {"n": {"source": "ntu", "raw_dir": "x", "protocols": {"p": protocol}}},
        "budgets": {"enabled": False},
    }


@pytest.mark.parametrize(
    ("config", "key", "words"),
    [
        (_config(by="camera", train=[2, 4], test=[1]), "protocols.p.train", "camera 4 does not"),
        (_config(by="camera", train=[2], test=[2]), "protocols.p", "camera 2 is in both"),
        (_config(by="split", train=["a"], test=["b"]), "protocols.p.by", "not a key of ntu"),
        (_config(train=[1, 107], test=[2]), "protocols.p.train", "subject 107 does not exist"),
        ({**_config(by="camera", train=[2, 3], test=[1]), "budgets": {}}, "protocols.p.by",
         "budgets: {enabled: false}"),
    ],
)  # fmt: skip
def test_bad_protocols_fail_at_start_up_naming_their_key(config, key, words):
    with pytest.raises(SettingsError) as err:
        resolve(config, "n")
    assert key in err.value.key and words in str(err.value), str(err.value)


def test_the_schema_refuses_names_in_a_subject_protocol_and_keys_of_other_sources():
    bad = _config(train=["xsub_train"], test=[1])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)
    utd = {"datasets": {"u": {"source": "utd_mhad", "raw_dir": "x", "bodies": 2,
                              "protocols": {"p": {"train": [1], "test": [2]}}}}}  # fmt: skip
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(utd, SCHEMA)
    with pytest.raises(SettingsError, match="'camera' is not a key of utd_mhad"):
        utd["datasets"]["u"].pop("bodies")
        utd["datasets"]["u"]["protocols"]["p"]["by"] = "camera"
        resolve(utd, "u")


# ------------------------------------------------------------------------------ topology
@pytest.mark.parametrize("bodies", [1, 2])
def test_the_student_streams_work_on_ntu_skeletons(bodies):
    k = 25 * bodies
    bones = bones_for(k)
    assert len(bones) == 24 * bodies and bones[:24] == NTU_BONES
    assert sorted({c for _, c in NTU_BONES}) == [j for j in range(25) if j != 0]  # a tree
    streams = ["joints", "bones", "velocity"]
    x = torch.randn(2, 7, k * 3)
    feats = stream_features(x, torch.tensor([7, 5]), streams, bones)
    assert feats.shape == (2, 7, n_stream_features(streams, k)) == (2, 7, 3 * (2 * k + len(bones)))


# ---------------------------------------------------------------------------- synthetic set
def test_the_synthetic_generator_writes_real_files_the_reader_reads(tmp_path):
    cfg = NtuSyntheticConfig(n_actions=3, n_performers=2, n_setups=2, n_cameras=2,
                             n_replications=1, two_body_actions=1, min_frames=6, max_frames=8,
                             empty_frames=2, missing_skeletons=1)  # fmt: skip
    folder = write_synthetic_ntu(tmp_path / "a", cfg)
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == 3 * 2 * 2 and files[0] == "S001C001P001R001A001.skeleton"
    again = write_synthetic_ntu(tmp_path / "b", cfg)
    assert all((folder / f).read_bytes() == (again / f).read_bytes() for f in files)
    frames, _ = ntu.read_skeleton(folder / "S001C001P001R001A003.skeleton")
    counts = [len(f) for f in frames]
    assert max(counts) == 2 and 1 in counts  # a two-body action; the partner enters late
    total = sum(ntu.read_skeleton(folder / f)[0].count([]) for f in files)
    assert total > 0  # empty frames at the ends
    n, rejected = ntu.ingest(folder, tmp_path / "s.parquet", bodies=2)
    assert n == 11 and len(rejected) == 1 and rejected[0].source == files[-1]
    with pytest.raises(InputError, match="not an empty folder"):
        write_synthetic_ntu(folder, cfg)
    with pytest.raises(ValueError, match="n_cameras must be an integer in"):
        NtuSyntheticConfig(n_cameras=4)


# ------------------------------------------------------------------------ settings and jobs
def test_ingest_settings_of_an_ntu_dataset_and_library_defaults_agree():
    s = resolve_all(DEMO)["ntu_demo"]
    assert job_settings(s, "ingest") == {
        "source": "ntu", "skip_bad": False, "allow_duplicates": False, "bodies": 2}  # fmt: skip
    assert job_settings(s, "synthetic_ntu")["synthetic_ntu"]["n_performers"] == 8
    assert "bodies" in job_settings(s, "summary")["dataset"]
    default = {f.name: f.default for f in dataclasses.fields(DatasetSettings)}["bodies"]
    for fn in (ntu.ingest, ntu.read_folder, ntu.select_bodies, ntu.landmarks, pyskl.ingest,
               pyskl.read_annotations):  # fmt: skip
        params = inspect.signature(fn).parameters
        assert params["bodies"].default == default
        for name in ("skip_bad", "allow_duplicates"):  # the ingest section's defaults
            assert name not in params or params[name].default == getattr(IngestSettings(), name)
    assert IngestJob.defaults(source="ntu").bodies == default


def test_existing_configs_keep_their_job_slices():
    """No key of the NTU/pyskl sources reaches another source's settings files."""
    new = {"bodies", "synthetic_ntu", "annotations"}
    configs = [*sorted((ROOT / "config").glob("*.yaml")), ROOT / ".test/config/config.yaml"]
    for path in configs:
        for name, s in resolve_all(yaml.safe_load(path.read_text())).items():
            if s.dataset.source in ("ntu", "pyskl"):
                continue
            assert not new & set(job_settings(s, "ingest")), (path, name)
            assert not new & set(job_settings(s, "summary")["dataset"]), (path, name)
            split = job_settings(s, "split", protocol=next(iter(s.dataset.protocols)))
            assert "by" not in split["protocol"], (path, name)


def test_schema_matches_the_generator_dataclass():
    props = SCHEMA["$defs"]["synthetic_ntu"]["properties"]
    assert set(props) == {f.name for f in dataclasses.fields(NtuSyntheticConfig)}


def test_demo_config_is_valid_and_plans_the_report(tmp_path):
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(DEMO))
    cmd = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow" / "Snakefile"),
           "--directory", str(work), "--cores", "2", "-n", "-p", "results/report.html"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "geokd synthetic-ntu data/raw/ntu_demo" in out
    assert "geokd ingest ntu data/raw/ntu_demo data/interim/ntu_demo/sequences.parquet" in out
    files = {f for f in out.split() if f.startswith(".snakemake/geokd/settings/")}
    protocols = [json.loads((work / f).read_text()).get("protocol") for f in files]
    assert {"by": "camera", "train": [2, 3], "test": [1]} in protocols


def test_cli_help_shows_the_bodies_default(capsys):
    with pytest.raises(SystemExit):
        main(["ingest", "ntu", "--help"])
    assert "default 1)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.slow
@pytest.mark.workflow
def test_the_workflow_ingests_ntu_and_pyskl_and_splits_by_camera_and_by_split(tmp_path):
    """Real-data configs (a raw_dir of .skeleton files, a pyskl pickle) through the rules
    ingest_ntu and ingest_pyskl, the split by camera and by pyskl split, up to the KNN."""
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    cfg = NtuSyntheticConfig(n_actions=3, n_performers=4, n_setups=2, min_frames=8,
                             max_frames=10, two_body_actions=1, missing_skeletons=1)  # fmt: skip
    folder = write_synthetic_ntu(work / "raw" / "ntu", cfg)
    anns, split = [], {"xsub_train": [], "xsub_val": []}
    for f in sorted(folder.iterdir())[:-1]:  # the last one has no body
        seq, _, _ = ntu.select_bodies(ntu.read_skeleton(f)[0], 1)
        anns.append({"frame_dir": f"clip_{f.stem}", "label": int(f.stem[-3:]) - 1,
                     "keypoint": seq[None].astype(np.float32)})  # fmt: skip
        split["xsub_train" if int(f.stem[9:12]) <= 2 else "xsub_val"].append(f"clip_{f.stem}")
    (work / "raw" / "ann.pkl").write_bytes(
        __import__("pickle").dumps({"split": split, "annotations": anns}, protocol=2)
    )
    config = {
        "datasets": {
            "ntu": {"source": "ntu", "raw_dir": "raw/ntu", "protocols": {
                "xview": {"by": "camera", "train": [2, 3], "test": [1]}}},
            "pk": {"source": "pyskl", "annotations": "raw/ann.pkl", "protocols": {
                "xsub": {"by": "split", "train": ["xsub_train"], "test": ["xsub_val"]}}},
        },
        "budgets": {"enabled": False},
        "teacher": {"nngk": {"k": 3}},
    }  # fmt: skip
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    targets = ["results/ntu/xview/knn/procrustes.json", "results/pk/xsub/knn/procrustes.json"]
    cmd = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow" / "Snakefile"),
           "--directory", str(work), "--cores", "2", *targets]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    view = pd.read_csv(work / "results/ntu/xview/split.tsv", sep="\t")
    cams = load_meta(work / "data/interim/ntu/sequences.parquet").set_index("sequence_id")
    assert (view["split"] == view["sequence_id"].map(cams["camera"]).map(
        {1: "test", 2: "train", 3: "train"})).all()  # fmt: skip
    pk = pd.read_csv(work / "results/pk/xsub/split.tsv", sep="\t")
    assert len(pk) == len(anns) and set(pk["subject"]) == {0}
    listing = (work / "data/interim/ntu/raw_listing.tsv").read_text()
    assert listing.count(".skeleton") == len(list(folder.iterdir())) == 72
    for target in targets:
        assert json.loads((work / target).read_text())["per_k"]["1"]["accuracy"] > 0.5
