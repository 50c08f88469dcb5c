"""The self-contained HTML report and its figures."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import geokd
from geokd import plots
from geokd.errors import InputError
from geokd.report import DatasetEntry, build_report
from geokd.skeleton import UTD_MHAD_BONES, UTD_MHAD_JOINTS
from geokd.store import StoreInfo, load_sequences, write_store

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVIL = '<script>alert("x")</script>'
CLASSES = ["wave", "clap", EVIL]
SUBJECTS = (1, 2, 3, 4)
TRIALS = (1, 2)


class _Collector(HTMLParser):
    """Every tag name, every ``<img src>`` and every ``href``/``src`` attribute."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.imgs: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        d = dict(attrs)
        if tag == "img":
            self.imgs.append(d.get("src") or "")
        self.links += [v for k, v in attrs if k in ("href", "src") and v is not None]


def _parse(text: str) -> _Collector:
    parser = _Collector()
    parser.feed(text)
    parser.close()
    return parser


def _make_store(path: Path, seed: int = 0) -> Path:
    """24 random-walk (T, 20, 3) sequences: 3 classes x 4 subjects x 2 trials."""
    rng = np.random.default_rng(seed)
    base = rng.normal(scale=0.3, size=(20, 3))
    seqs, rows = [], []
    for label, name in enumerate(CLASSES):
        for s in SUBJECTS:
            for t in TRIALS:
                n = int(rng.integers(8, 21))
                steps = rng.normal(scale=0.01, size=(n, 20, 3))
                seqs.append(base + np.cumsum(steps, axis=0))
                rows.append(
                    {
                        "sequence_id": f"a{label + 1}_s{s}_t{t}",
                        "label": label,
                        "label_name": name,
                        "subject": s,
                        "trial": t,
                        "source": f"raw/a{label + 1}_s{s}_t{t}.mat",
                        "sha256": "0" * 64,
                    }
                )
    info = StoreInfo(
        dataset="toy",
        landmark_names=list(UTD_MHAD_JOINTS),
        units="m",
        bones=list(UTD_MHAD_BONES),
        coordinate_system="Kinect camera, y up",
        source_info={"generator": "test random walk", "seed": seed},
    )
    write_store(path, seqs, pd.DataFrame(rows), info)
    return path


def _write_split(store: Path, out: Path, train, test, val=()) -> Path:
    _, meta = load_sequences(store)
    owner = {s: k for k, subs in (("train", train), ("val", val), ("test", test)) for s in subs}
    table = meta[["sequence_id", "label", "subject", "trial"]].copy()
    table["split"] = table["subject"].map(owner)
    table = table[table["split"].notna()]
    out.write_text(table.to_csv(sep="\t", index=False, lineterminator="\n"))
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A store, two split tables and the report built from them."""
    tmp = tmp_path_factory.mktemp("report")
    store = _make_store(tmp / "toy.parquet")
    splits = {
        "paper": _write_split(store, tmp / "paper.tsv", [1, 2], [4], val=[3]),
        "cross_subject": _write_split(store, tmp / "xs.tsv", [1, 3], [2]),
    }
    entries = [DatasetEntry(name="Toy & friends", store=store, splits=splits)]
    out = tmp / "results" / "report.html"
    build_report(out, entries)
    return {"tmp": tmp, "store": store, "splits": splits, "entries": entries, "out": out}


def test_report_is_self_contained_with_valid_embedded_pngs(built):
    text = built["out"].read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    parsed = _parse(text)
    assert {"html", "head", "body", "title", "style", "nav", "table"} <= set(parsed.tags)
    assert "script" not in parsed.tags
    # 3 figures for the dataset + 1 per protocol
    assert len(parsed.imgs) == 5
    for src in parsed.imgs:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        png = base64.b64decode(src[len(prefix) :], validate=True)
        assert png.startswith(PNG_SIGNATURE)
        assert b"matplotlib.org" not in png
    # links are in-page anchors or data URIs only, and every anchor target exists
    for link in parsed.links:
        assert link.startswith(("#", "data:image/png;base64,"))
        if link.startswith("#"):
            assert f'id="{link[1:]}"' in text
    lowered = text.lower()
    assert "http://" not in lowered and "https://" not in lowered
    # nothing URL-like outside the data URIs (protocol-relative "//", CSS url(), @import)
    rest = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", lowered)
    assert "//" not in rest and "url(" not in rest and "@import" not in rest


def test_report_shows_the_facts_and_counts(built):
    text = built["out"].read_text(encoding="utf-8")
    assert "<title>geokd report</title>" in text and "<h1>geokd report</h1>" in text
    assert f"geokd {geokd.__version__}" in text
    assert "Toy &amp; friends" in text  # dataset name, escaped
    assert "<th>sequences</th><td>24</td>" in text
    assert "<th>classes</th><td>3</td>" in text
    assert "<th>subjects</th><td>4 (1, 2, 3, 4)</td>" in text
    assert "<th>landmarks</th><td>20</td>" in text
    _, meta = load_sequences(built["store"])
    lengths = meta["n_frames"]
    assert f"min {lengths.min()}, median {np.median(lengths):g}, max {lengths.max()}" in text
    assert hashlib.sha256(built["store"].read_bytes()).hexdigest() in text
    assert "left_shoulder" in text and "test random walk" in text
    # the first sequence of the store is the one drawn
    assert "skeleton sequence a1_s1_t1" in text
    # per-protocol tables: split sizes and subjects (each subject has 3 x 2 = 6 sequences)
    assert "Protocol paper" in text and "Protocol cross_subject" in text
    assert '<td>train</td><td class="num">12</td><td class="num">3</td><td>1, 2</td>' in text
    assert '<td>val</td><td class="num">6</td><td class="num">3</td><td>3</td>' in text
    assert '<td>test</td><td class="num">6</td><td class="num">3</td><td>4</td>' in text
    assert '<td>train</td><td class="num">12</td><td class="num">3</td><td>1, 3</td>' in text
    # subject 4 is in no split of cross_subject
    assert '<td>not used</td><td class="num">6</td><td class="num">3</td><td>4</td>' in text


def test_labels_from_the_data_are_html_escaped(built):
    text = built["out"].read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert f"2: {html.escape(EVIL, quote=True)}" in text  # in the class names of the facts


def test_same_inputs_give_byte_identical_html(built):
    again = built["tmp"] / "again" / "report.html"
    build_report(again, built["entries"])
    assert again.read_bytes() == built["out"].read_bytes()
    # no leftover temporary files beside the atomic output
    assert [p.name for p in again.parent.iterdir()] == ["report.html"]


def test_figures_dir_gets_png_and_pdf(built, tmp_path):
    entry = DatasetEntry(name="toy", store=built["store"], splits={})
    build_report(tmp_path / "r.html", [entry], figures_dir=tmp_path / "figs")
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == sorted(
        f"toy_{k}.{ext}" for k in ("class_subject", "lengths", "skeleton") for ext in ("png", "pdf")
    )
    assert (tmp_path / "figs" / "toy_lengths.pdf").read_bytes().startswith(b"%PDF")
    assert "No split tables given" in (tmp_path / "r.html").read_text()


def test_missing_store_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope" / "store.parquet"
    out = tmp_path / "report.html"
    with pytest.raises(InputError, match="sequence store not found") as exc:
        build_report(out, [DatasetEntry(name="x", store=missing, splits={})])
    assert str(missing) in str(exc.value)
    assert not out.exists()


def test_missing_or_mismatched_split_table_is_a_clear_error(built, tmp_path):
    missing = tmp_path / "missing.tsv"
    entry = DatasetEntry(name="x", store=built["store"], splits={"p": missing})
    with pytest.raises(InputError, match="split table not found") as exc:
        build_report(tmp_path / "r.html", [entry])
    assert str(missing) in str(exc.value)
    other = _write_split(built["store"], tmp_path / "other.tsv", [1], [2])
    other.write_text(other.read_text() + "ghost\t0\t1\t1\ttrain\n")
    entry = DatasetEntry(name="x", store=built["store"], splits={"p": other})
    with pytest.raises(InputError, match=r"1 sequence id\(s\) not in the store"):
        build_report(tmp_path / "r.html", [entry])


def test_no_datasets_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no datasets"):
        build_report(tmp_path / "r.html", [])


def test_skeleton_strip_draws_evenly_spaced_frames_with_y_up(built):
    seqs, _ = load_sequences(built["store"])
    seq = seqs[0]
    fig = plots.skeleton_strip(seq, UTD_MHAD_BONES, UTD_MHAD_JOINTS, "title $x$", units="m")
    assert isinstance(fig, Figure)
    axes = fig.get_axes()
    t = seq.shape[0]
    expected = np.unique(np.linspace(0, t - 1, 6).round().astype(int))
    assert [ax.get_title() for ax in axes] == [f"frame {f + 1}/{t}" for f in expected]
    ax = axes[0]
    assert ax.get_aspect() == 1.0
    assert not ax.yaxis_inverted()
    assert ax.get_ylabel() == "y, up (m)" and ax.get_xlabel() == "x (m)"
    # first bone of the first panel: x/y of (parent, child) at frame 0, no flipping
    p, c = UTD_MHAD_BONES[0]
    xdata, ydata = ax.lines[0].get_data()
    np.testing.assert_array_equal(xdata, seq[0, [p, c], 0])
    np.testing.assert_array_equal(ydata, seq[0, [p, c], 1])
    # a short sequence gives fewer panels; "$" in a title is drawn literally
    short = plots.skeleton_strip(seq[:2], UTD_MHAD_BONES, UTD_MHAD_JOINTS, "$")
    assert len(short.get_axes()) == 2
    assert plots.fig_to_png_base64(short)


def test_other_figures_have_labels_and_save_deterministically(built, tmp_path):
    _, meta = load_sequences(built["store"])
    table = pd.read_csv(built["splits"]["paper"], sep="\t")
    figs = {
        "counts": plots.class_subject_counts(meta),
        "lengths": plots.length_histogram(meta, table),
        "lengths_plain": plots.length_histogram(meta),
        "splits": plots.split_counts(table, {0: "wave", 1: "clap", 2: "evil"}),
    }
    for fig in figs.values():
        ax = fig.get_axes()[0]
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    counts_ax = figs["counts"].get_axes()[0]
    assert [t.get_text() for t in counts_ax.get_yticklabels()] == CLASSES
    splits_ax = figs["splits"].get_axes()[0]
    assert [t.get_text() for t in splits_ax.get_yticklabels()] == ["wave", "clap", "evil"]
    legend = [t.get_text() for t in figs["lengths"].get_axes()[0].get_legend().get_texts()]
    assert legend == ["train", "val", "test"]
    paths = plots.save_figure(figs["splits"], tmp_path / "a" / "splits")
    again = plots.save_figure(figs["splits"], tmp_path / "b" / "splits")
    assert [p.name for p in paths] == ["splits.png", "splits.pdf"]
    for first, second in zip(paths, again, strict=True):
        assert first.read_bytes() == second.read_bytes()
    assert paths[0].read_bytes().startswith(PNG_SIGNATURE)
    assert b"matplotlib.org" not in paths[1].read_bytes()
