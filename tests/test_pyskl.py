"""pyskl annotation pickles (issue 26): values stored exactly (C = 3) or with z = 0 (C = 2),
labels, subjects and cameras from NTU names, subject 0 otherwise, the pickle's split names as
protocols, and a pickle that names anything but containers and arrays is refused unrun."""

from __future__ import annotations

import collections
import io
import os
import pickle
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml

from geokd.cli import main
from geokd.data import pyskl
from geokd.data.skeleton import COCO_KEYPOINTS, NTU_ACTIONS, NTU_JOINTS
from geokd.data.splits import assign_splits, write_split
from geokd.data.store import load_meta, load_sequences, read_info
from geokd.errors import InputError
from geokd.jobs import job_settings
from geokd.settings import SettingsError, resolve

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
NTU_NAMES = ["S001C001P001R001A001", "S001C002P002R001A002", "S002C003P003R002A050"]


def annotation(name: str, label: int, seed: int, *, m: int = 2, t: int = 5, v: int = 25,
               c: int = 3) -> dict:  # fmt: skip
    kp = np.random.default_rng(seed).normal(size=(m, t, v, c)).astype(np.float32)
    score = np.ones((m, t, v), np.float32)
    return {"frame_dir": name, "label": label, "keypoint": kp, "total_frames": t,
            "keypoint_score": score, "img_shape": (1080, 1920)}  # fmt: skip


def ntu_pickle(path: Path, protocol: int = 2) -> dict:
    """pyskl's NTU layout: NTU names, label = action - 1, two persons (the second absent, all
    zeros, in the first sample), a frame without anyone in the third; xsub and xview splits."""
    anns = [annotation(n, int(n[-3:]) - 1, i) for i, n in enumerate(NTU_NAMES)]
    anns[0]["label"] = np.int64(0)  # labels may be NumPy scalars
    anns[0]["keypoint"][1] = 0
    anns[2]["keypoint"][:, 2] = 0
    anns[2]["keypoint"][0] *= 5  # person 0 moves most
    data = {
        "split": {
            "xsub_train": NTU_NAMES[:2],
            "xsub_val": NTU_NAMES[2:],
            "xview_train": NTU_NAMES[1:],
            "xview_val": NTU_NAMES[:1],
        },
        "annotations": anns,
    }
    with path.open("wb") as f:
        pickle.dump(data, f, protocol=protocol)
    return data


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_an_ntu_pickle_ingests_exactly_with_labels_subjects_cameras(tmp_path, protocol):
    data = ntu_pickle(tmp_path / "ntu.pkl", protocol)
    out = tmp_path / "s.parquet"
    n, rejected = pyskl.ingest(tmp_path / "ntu.pkl", out, bodies=1)
    assert n == 3 and rejected == []
    seqs, meta = load_sequences(out)
    got = dict(zip(meta["sequence_id"], seqs, strict=True))
    kp = [a["keypoint"].astype(np.float64) for a in data["annotations"]]
    np.testing.assert_array_equal(got[NTU_NAMES[0]], kp[0][0])  # the only person
    keep = [t for t in range(5) if t != 2]  # frame 2 has nobody: dropped
    np.testing.assert_array_equal(got[NTU_NAMES[2]], kp[2][0][keep])
    row = meta.set_index("sequence_id").loc[NTU_NAMES[2]]
    assert (row.label, row.label_name, row.subject, row.trial, row.camera, row.setup) == (
        49, NTU_ACTIONS[49], 3, 2, 3, 2)  # fmt: skip
    assert meta.set_index("sequence_id")["splits"].to_dict() == {
        NTU_NAMES[0]: "xsub_train,xview_val",
        NTU_NAMES[1]: "xsub_train,xview_train",
        NTU_NAMES[2]: "xsub_val,xview_train",
    }
    info = read_info(out)
    assert info.landmark_names == list(NTU_JOINTS) and info.units == "m"
    facts = info.source_info
    assert facts["keypoint_channels"] == 3 and "z" not in facts
    assert facts["frames_dropped"] == 1 and facts["splits"]["xsub_train"] == 2


def test_two_persons_and_the_pickle_split_as_protocols(tmp_path):
    data = ntu_pickle(tmp_path / "ntu.pkl")
    out = tmp_path / "two.parquet"
    pyskl.ingest(tmp_path / "ntu.pkl", out, bodies=2)
    seqs, meta = load_sequences(out)
    got = dict(zip(meta["sequence_id"], seqs, strict=True))
    kp0 = data["annotations"][0]["keypoint"].astype(np.float64)
    np.testing.assert_array_equal(got[NTU_NAMES[0]], np.concatenate([kp0[0], kp0[0]], axis=1))
    assert got[NTU_NAMES[1]].shape == (5, 50, 3)
    xsub = assign_splits(meta, {"by": "split", "train": ["xsub_train"], "test": ["xsub_val"]})
    assert xsub["split"].tolist() == ["train", "train", "test"]
    split = write_split(out, tmp_path / "x.tsv", {"by": "split", "train": ["xview_train"],
                                                  "test": ["xview_val"]})  # fmt: skip
    assert split.set_index("sequence_id")["split"][NTU_NAMES[0]] == "test"
    # the NTU protocols apply too: subjects and cameras come from the names
    view = assign_splits(meta, {"by": "camera", "train": [2, 3], "test": [1]})
    assert view["split"].tolist() == ["test", "train", "train"]
    with pytest.raises(ValueError, match="puts in"):
        assign_splits(meta, {"by": "split", "train": ["xsub_train"], "test": ["xview_val"]})
    with pytest.raises(ValueError, match=r"pyskl split\(s\) \['xsub_tes'\] not in the store"):
        assign_splits(meta, {"by": "split", "train": ["xsub_train"], "test": ["xsub_tes"]})


def test_2d_keypoints_get_z_0_and_other_names_subject_0(tmp_path):
    anns = [annotation(f"v_clip_{i}", i % 2, i, m=1, v=17, c=2) for i in range(4)]
    data = {"split": {"train1": ["v_clip_0", "v_clip_1"], "test1": ["v_clip_2", "v_clip_3"]},
            "annotations": anns}  # fmt: skip
    (tmp_path / "gym.pkl").write_bytes(pickle.dumps(data))
    out = tmp_path / "g.parquet"
    assert main(["ingest", "pyskl", str(tmp_path / "gym.pkl"), str(out), "--dataset", "gym"]) == 0
    seqs, meta = load_sequences(out)
    got = dict(zip(meta["sequence_id"], seqs, strict=True))
    kp = anns[3]["keypoint"][0].astype(np.float64)
    np.testing.assert_array_equal(got["v_clip_3"][..., :2], kp)
    assert (got["v_clip_3"][..., 2] == 0).all()
    assert set(meta["subject"]) == {0} and meta["trial"].isna().all()
    assert "camera" not in meta.columns and meta["label_name"].tolist()[0] == "class000"
    info = read_info(out)
    assert info.dataset == "gym" and info.landmark_names == list(COCO_KEYPOINTS)
    assert "z = 0" in info.source_info["z"] and "z = 0" in info.coordinate_system
    assert info.source_info["subjects"].startswith("0")
    split = assign_splits(meta, {"by": "split", "train": ["train1"], "test": ["test1"]})
    assert split["split"].tolist() == ["train", "test", "train", "test"]  # by label, then id


class Payload:
    """A pickle that would create a file when loaded (if it were ever loaded)."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize(
    "payload",
    [
        lambda p: Payload(p),
        lambda p: collections.Counter("abc"),  # harmless, but not a plain container
        lambda p: pd.DataFrame({"a": [1]}),
        lambda p: np.array([1, 2], dtype=object),  # object arrays hold whatever they pickle
    ],
)
def test_a_pickle_with_anything_but_containers_and_arrays_is_refused(tmp_path, capsys, payload):
    target = tmp_path / "pwned"
    data = {"split": {}, "annotations": [annotation(NTU_NAMES[0], 0, 0)], "x": payload(target)}
    if isinstance(data["x"], np.ndarray):
        data["x"][0] = Payload(target)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    assert main(["ingest", "pyskl", str(path), str(tmp_path / "s.parquet")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"geokd: error: {path}: unsafe pickle: ")
    assert "refused to load" in err[0] and not target.exists()
    assert not (tmp_path / "s.parquet").exists()


def test_safe_unpickler_reads_containers_arrays_and_numpy_scalars():
    value = {"a": [1, 2.5, None, True], "b": (b"x", "y"), "c": {1, 2}, "d": frozenset([3]),
             "e": np.arange(6, dtype=np.int16).reshape(2, 3), "f": np.float32(1.5),
             "g": collections.OrderedDict(z=1), "h": bytearray(b"ab"),
             "i": np.dtype("<f8")}  # fmt: skip
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        back = pyskl.SafeUnpickler(io.BytesIO(pickle.dumps(value, protocol))).load()
        assert back.keys() == value.keys() and back["c"] == {1, 2} and back["f"] == np.float32(1.5)
        np.testing.assert_array_equal(back["e"], value["e"])


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda a: a.pop("keypoint"), "'keypoint' is NoneType"),
        (lambda a: a.update(keypoint=np.zeros((5, 25, 3))), "expected (M, T, V, C)"),
        (lambda a: a.update(label="drink"), "label 'drink' is not an integer"),
        (lambda a: a["keypoint"].__setitem__((0, 0, 0, 0), np.nan), "1 non-finite"),
        (lambda a: a.update(keypoint=np.ones((1, 3, 24, 3))), "V = 24, but annotation 0 has 25"),
    ],
)
def test_a_bad_annotation_names_the_file_and_the_annotation(tmp_path, capsys, edit, words):
    data = ntu_pickle(tmp_path / "ntu.pkl")
    edit(data["annotations"][1])
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(data))
    out = tmp_path / "s.parquet"
    assert main(["ingest", "pyskl", str(path), str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path} annotation 1 ({NTU_NAMES[1]}): " in err[0], err
    assert words in err[0] and not out.exists()
    assert main(["ingest", "pyskl", str(path), str(out), "--skip-bad"]) == 0
    table = pd.read_csv(f"{out}.rejected.tsv", sep="\t")
    assert table["source"].tolist() == [NTU_NAMES[1]] and words in table["reason"][0]
    assert len(load_meta(out)) == 2


def test_a_sample_without_anyone_is_rejected_and_a_duplicate_fails(tmp_path):
    data = ntu_pickle(tmp_path / "ntu.pkl")
    data["annotations"][1]["keypoint"][:] = 0
    (tmp_path / "a.pkl").write_bytes(pickle.dumps(data))
    n, rejected = pyskl.ingest(tmp_path / "a.pkl", tmp_path / "s.parquet")
    assert n == 2 and rejected[0].source == NTU_NAMES[1]
    assert "no person in any of its 5 frames" in rejected[0].reason
    data["annotations"].append(dict(data["annotations"][0]))
    (tmp_path / "b.pkl").write_bytes(pickle.dumps(data))
    with pytest.raises(InputError, match="duplicate frame_dir"):
        pyskl.ingest(tmp_path / "b.pkl", tmp_path / "t.parquet", skip_bad=True)
    with pytest.raises(InputError, match="not a pyskl annotation file"):
        (tmp_path / "c.pkl").write_bytes(pickle.dumps([1, 2]))
        pyskl.load_annotations(tmp_path / "c.pkl")
    (tmp_path / "d.pkl").write_bytes(b"not a pickle")
    with pytest.raises(InputError, match="not a readable pickle"):
        pyskl.load_annotations(tmp_path / "d.pkl")


def _config(**protocol) -> dict:
    return {
        "datasets": {
            "k": {"source": "pyskl", "annotations": "a.pkl", "protocols": {"p": protocol}}
        },
        "budgets": {"enabled": False},
    }


def test_a_config_names_the_pickles_splits():
    config = _config(by="split", train=["xsub_train"], test=["xsub_val"])
    jsonschema.validate(config, SCHEMA)
    s = resolve(config, "k")
    assert job_settings(s, "split", protocol="p") == {
        "protocol": {"by": "split", "train": ["xsub_train"], "test": ["xsub_val"]}}  # fmt: skip
    assert job_settings(s, "ingest") == {"source": "pyskl", "skip_bad": False,
                                         "allow_duplicates": False, "bodies": 1}  # fmt: skip
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_config(by="split", train=[1], test=["b"]), SCHEMA)
    with pytest.raises(jsonschema.ValidationError):  # pyskl needs its pickle
        jsonschema.validate({"datasets": {"k": {"source": "pyskl", "protocols": {
            "p": {"train": [1], "test": [2]}}}}}, SCHEMA)  # fmt: skip
    with pytest.raises(SettingsError, match="by split lists split names"):
        resolve(_config(by="split", train=[1], test=["b"]), "k")
