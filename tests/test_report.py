"""The self-contained HTML report and its figures."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

import geokd
from geokd.data.skeleton import UTD_MHAD_BONES, UTD_MHAD_JOINTS
from geokd.data.store import StoreInfo, load_sequences, write_store
from geokd.distances.shards import write_npy_with_sidecar
from geokd.errors import InputError
from geokd.models.teacher import diagnostics, write_soft_labels
from geokd.report import plots
from geokd.report import plots_answer as aplots
from geokd.report import plots_results as rplots
from geokd.report import summary as summary_mod
from geokd.report.html import figure_stage
from geokd.report.page import DatasetEntry, build_report
from geokd.report.results import RESULT_FIGURE_STAGES, _comparison_html, mode_title, seed_key
from geokd.report.tables import write_tables

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
    names = sorted(
        p.relative_to(tmp_path / "figs").as_posix() for p in (tmp_path / "figs").rglob("*.*")
    )
    assert names == sorted(
        f"data/toy_{k}.{ext}"
        for k in ("class_subject", "lengths", "skeleton")
        for ext in ("png", "pdf")
    )
    assert (tmp_path / "figs" / "data" / "toy_lengths.pdf").read_bytes().startswith(b"%PDF")
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


def test_image_coordinates_are_drawn_upright(built):
    """SIGNUM's MediaPipe coordinates have y down: the axis is inverted and says so."""
    seq = load_sequences(built["store"])[0][0]
    fig = plots.skeleton_strip(seq, UTD_MHAD_BONES, UTD_MHAD_JOINTS, "t", units="px", y_down=True)
    ax = fig.get_axes()[0]
    assert ax.yaxis_inverted() and ax.get_ylabel() == "y, down (px)"


def test_figures_stay_a_readable_size_with_450_classes():
    rng = np.random.default_rng(0)
    meta = pd.DataFrame(
        {"label": np.repeat(np.arange(450), 25), "subject": np.tile(np.arange(1, 26), 450)}
    )
    fig = plots.class_subject_counts(meta)
    assert max(fig.get_size_inches()) <= 12
    assert len(fig.get_axes()[0].get_yticklabels()) < 20  # numbers, not 450 overlapping names
    assert max(rplots.per_class_accuracy({"KNN": rng.random(450)}, []).get_size_inches()) <= 14
    P = rng.dirichlet(np.ones(450), size=10)
    fig = rplots.soft_label_examples(P, np.arange(10), [str(i) for i in range(10)], [], "softmax")
    assert max(fig.get_size_inches()) <= 14


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


# ---------------------------------------------------------------------------------------------
# Results sections: a hand-made results folder (always) and the real workflow run (if present)
# ---------------------------------------------------------------------------------------------

SECTION_TITLES = {
    "acc": "Accuracy and inference speed",
    "dist": "Distances",
    "knn": "k-NN accuracy against k",
    "teacher": "Teacher",
    "curves": "Training curves",
    "confusion": "Confusion matrices and per-class accuracy",
}
RUN_FACTS_TITLES = (
    "Run facts",
    "Wall time and memory per rule",
    "Software and revision",
    "Data checksums (SHA-256)",
)
# per protocol: accuracy against inference time; heat map + histogram + DTW alignment path;
# k-NN curve; 1 reliability diagram + 1 soft-label figure; training curves; 2 confusion
# matrices + the transformer / distilled pair; per-class bars
N_RESULT_FIGURES = 12
# test split of the toy store (subjects 3, 4): 3 classes x 2 subjects x 2 trials, 4 per class
KNN_CORRECT = {1: (4, 3, 2), 2: (3, 3, 2), 3: (4, 4, 2)}
MODEL_CORRECT = {"transformer": ((2, 2, 1), (3, 2, 2)), "distilled": ((4, 3, 1), (3, 3, 3))}
# five families: metric (10/12, 10/12) is the best geometry-taught model, label smoothing
# (7/12, 8/12) the best labels-only one
FIVE_CORRECT = {
    "transformer": ((2, 2, 1), (3, 2, 2)),
    "label_smoothing": ((3, 2, 2), (3, 3, 2)),
    "distilled": ((4, 3, 1), (3, 3, 3)),
    "metric": ((4, 4, 2), (4, 3, 3)),
    "nngk": ((2, 2, 2), (3, 2, 1)),
}
TITLES = {
    "transformer": "Transformer (labels only)",
    "label_smoothing": "Label smoothing (labels only)",
    "distilled": "Distilled student",
    "metric": "Metric distillation",
    "nngk": "NNGK head (labels only)",
}


def _assert_self_contained(text: str) -> _Collector:
    """No script, no external reference; every <img> a valid PNG data URI; anchors exist."""
    parsed = _parse(text)
    assert "script" not in parsed.tags
    for src in parsed.imgs:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        png = base64.b64decode(src[len(prefix) :], validate=True)
        assert png.startswith(PNG_SIGNATURE)
    for link in parsed.links:
        assert link.startswith(("#", "data:image/png;base64,"))
        if link.startswith("#"):
            assert f'id="{link[1:]}"' in text
    rest = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text.lower())
    for bad in ("http://", "https://", "//", "url(", "@import", "<script"):
        assert bad not in rest
    return parsed


def _class_metrics(correct: tuple[int, ...]) -> dict:
    """Test metrics of 12 sequences, 4 per class; misses go to the next class."""
    C = len(correct)
    cm = np.zeros((C, C), dtype=int)
    for c, n in enumerate(correct):
        cm[c, c] = n
        cm[c, (c + 1) % C] = 4 - n
    acc = sum(correct) / 12
    return {
        "n": 12,
        "accuracy": acc,
        "macro_f1": acc - 0.01,
        "confusion": cm.tolist(),
        "per_class_accuracy": [n / 4 for n in correct],
        "support": [4] * C,
    }


def _write_json(path: Path, obj: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True))
    return path


def _make_results(
    store: Path, rdir: Path, protocol: str = "paper", models: dict = MODEL_CORRECT
) -> Path:
    """A results folder like the workflow's, from hand-made files, with a summary.json;
    ``models``: family -> correct test answers per class, one tuple per seed."""
    rng = np.random.default_rng(7)
    rdir.mkdir(parents=True, exist_ok=True)
    split = _write_split(store, rdir / "split.tsv", [1, 2], [3, 4])
    table = pd.read_csv(split, sep="\t")
    train, test = table[table["split"] == "train"], table[table["split"] == "test"]
    tr_ids, y = train["sequence_id"].astype(str).tolist(), train["label"].to_numpy()
    te_ids = test["sequence_id"].astype(str).tolist()
    X = rng.normal(size=(len(tr_ids), 4)) + 3.0 * y[:, None]
    Xt = rng.normal(size=(len(te_ids), 4)) + 3.0 * test["label"].to_numpy()[:, None]
    dist = rdir / "distances" / "procrustes"
    write_npy_with_sidecar(
        dist / "train-train.npy",
        np.linalg.norm(X[:, None] - X[None], axis=-1),
        {"row_ids": tr_ids, "col_ids": tr_ids, "metric": "procrustes"},
    )
    write_npy_with_sidecar(
        dist / "test-train.npy",
        np.linalg.norm(Xt[:, None] - X[None], axis=-1),
        {"row_ids": te_ids, "col_ids": tr_ids, "metric": "procrustes"},
    )
    P = rng.dirichlet(np.ones(3), size=len(tr_ids))
    teacher = rdir / "teacher"
    write_soft_labels(teacher / "softmax.parquet", tr_ids, P, CLASSES, {"method": "softmax"})
    params = {"temperature": 3.0, "note": EVIL}
    teachers = [
        _write_json(
            teacher / "softmax.json", {**diagnostics(P, y), "method": "softmax", "params": params}
        )
    ]
    per_k = {str(k): {"k": k, **_class_metrics(c)} for k, c in KNN_CORRECT.items()}
    knn = [
        _write_json(
            rdir / "knn" / "procrustes.json",
            {
                "metric": "procrustes",
                "ks": sorted(KNN_CORRECT),
                "n_classes": 3,
                "per_k": per_k,
                "best_k": 3,
                "best_accuracy": per_k["3"]["accuracy"],
            },
        )
    ]
    latency = [
        _write_json(
            rdir / "knn" / "latency_procrustes.json",
            {"metric": "procrustes", "ms_per_query": 12.3456, "n_queries": 3},
        )
    ]
    runs = []
    for mode, per_seed in models.items():
        for seed, correct in enumerate(per_seed):
            run = rdir / "models" / mode / f"seed{seed}"
            epochs = [1, 2, 3, 4, 5]
            loss = [2.0 / (e + seed) for e in epochs]
            history = {
                "epoch": epochs,
                "loss": loss,
                "ce": [v * 1.1 for v in loss],
                "eval": {
                    "test": {"epoch": epochs, "accuracy": [0.1 * e + 0.05 * seed for e in epochs]}
                },
            }
            _write_json(run / "history.json", history)
            metrics = {
                "mode": mode,
                "seed": seed,
                "epoch": 5,
                "class_names": CLASSES,
                "test": _class_metrics(correct),
                "train": _class_metrics((4, 4, 4)),
                "latency_ms_per_sample": {"batch_1": 0.5 + 0.25 * seed, "batch_16": 0.125 + seed},
            }
            runs.append(_write_json(run / "metrics.json", metrics))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(summary_mod, "git_revision", lambda: "0123abcd" * 5)
        summary_mod.summarize(
            rdir / "summary.json",
            knn=knn,
            teachers=teachers,
            runs=runs,
            latency=latency,
            store=store,
            config={"seed": 0},
            dataset="toy",
            protocol=protocol,
        )
    return rdir


def _write_benchmarks(root: Path) -> Path:
    header = "s\th:m:s\tmax_rss\tmax_vms\n"
    files = {
        "train_distilled/toy/paper/seed0.tsv": "2.5\t0:00:02\t100.5\t900\n",
        "train_distilled/toy/paper/seed1.tsv": "3.5\t0:00:03\t120.4\t900\n",
        "knn/toy/paper/procrustes.tsv": "0.75\t0:00:00\t-\t-\n",
    }
    for rel, row in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(header + row)
    return root


@pytest.fixture(scope="module")
def results_built(built):
    """The toy store with a hand-made results folder and benchmarks, and its report."""
    tmp = built["tmp"] / "with_results"
    rdir = _make_results(built["store"], tmp / "results" / "toy" / "paper")
    bench = _write_benchmarks(tmp / "benchmarks")
    entries = [
        DatasetEntry(
            name="Toy & friends",
            store=built["store"],
            splits={"paper": rdir / "split.tsv"},
            results={"paper": rdir},
        )
    ]
    out = tmp / "report.html"
    build_report(out, entries, benchmarks_dir=bench)
    summary = json.loads((rdir / "summary.json").read_text())
    return {
        "tmp": tmp,
        "rdir": rdir,
        "bench": bench,
        "entries": entries,
        "out": out,
        "summary": summary,
    }


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _assert_tables_match_summary(text: str, summary: dict) -> None:
    """The accuracy and inference tables of a protocol show the summary's numbers."""
    for metric, res in summary["knn"].items():
        f1 = res["macro_f1_per_k"]
        assert (
            f'<td>KNN 1-NN ({metric})</td><td class="num">{_pct(res["k1_accuracy"])}</td>'
            f'<td class="num">{_pct(f1["1"])}</td>'
        ) in text
        k = res["best_k"]
        assert (
            f"<td>KNN best k = {k} ({metric}; k chosen on test: optimistic)</td>"
            f'<td class="num">{_pct(res["best_accuracy"])}</td>'
            f'<td class="num">{_pct(f1[str(k)])}</td>'
        ) in text
    for mode in summary_mod.model_names(summary):
        title = html.escape(TITLES.get(mode) or mode_title(mode))
        res = summary[mode]
        # one run (an ensemble) has no spread to show
        cell = _pct(res["accuracy_mean"])
        if res["n_seeds"] > 1:
            cell += f" ± {_pct(res['accuracy_std'])}"
        seeds = ", ".join(
            f"{s}: {_pct(a)}"
            for s, a in sorted(res["per_seed"].items(), key=lambda x: seed_key(x[0]))
        )
        assert (
            f'<td>{title}</td><td class="num">{cell}</td>'
            f'<td class="num">{_pct(res["macro_f1_mean"])}</td>'
            f'<td class="num">{res["n_seeds"]}</td><td class="num">{seeds}</td>'
        ) in text
    inf = summary["inference"]
    for key, unit in (
        ("student_ms_per_sample", "ms/sample"),
        ("student_ms_per_sample_batched", "ms/sample"),
        ("knn_ms_per_sample", "ms/query"),
    ):
        assert f'<td class="num">{inf[key]:.3f}</td><td>{unit}</td>' in text
    assert f'<td class="num">{inf["speedup"]:.1f}</td><td>&times;</td>' in text


def test_results_report_has_every_section_and_valid_pngs(results_built):
    text = results_built["out"].read_text(encoding="utf-8")
    parsed = _assert_self_contained(text)
    # 3 dataset figures + 1 split figure + the results figures of one protocol
    assert len(parsed.imgs) == 4 + N_RESULT_FIGURES
    assert '<h4 id="ds0-r0">Results: protocol paper</h4>' in text
    for key, title in SECTION_TITLES.items():
        assert f'<h5 id="ds0-r0-{key}">{html.escape(title)}</h5>' in text
    for title in RUN_FACTS_TITLES:
        assert f">{html.escape(title)}</h" in text
    assert "Not shown" not in text
    assert '<a href="#ds0-r0">results, protocol paper</a>' in text
    # evil text from the results (teacher parameters) is escaped
    assert "<script" not in text.lower() and html.escape(EVIL, quote=True) in text


def test_results_tables_equal_the_summary(results_built):
    text = results_built["out"].read_text(encoding="utf-8")
    summary = results_built["summary"]
    _assert_tables_match_summary(text, summary)
    # hand-made values, checked independently of the summary
    assert summary["distilled"]["per_seed"] == {"0": 8 / 12, "1": 9 / 12}
    assert (
        f"{100 * np.mean([8 / 12, 9 / 12]):.2f} ± {100 * np.std([8 / 12, 9 / 12], ddof=1):.2f}"
        in text
    )
    assert '<td class="num">0.625</td><td>ms/sample</td>' in text  # batch 1: mean of 0.5, 0.75
    assert '<td class="num">0.125</td><td>ms/sample</td>' in text  # batched: best of 0.125, 1.125
    assert '<td class="num">12.346</td><td>ms/query</td>' in text
    assert f'<td class="num">{12.3456 / 0.625:.1f}</td>' in text
    # k-NN table: queries, 1-NN, best k, latency
    assert (
        '<td>procrustes</td><td class="num">12</td><td class="num">75.00</td>'
        '<td class="num">74.00</td><td class="num">3</td><td class="num">83.33</td>'
        '<td class="num">12.346</td>'
    ) in text
    # teacher diagnostics
    diag = summary["teacher"]["softmax"]
    assert (
        f'<td>softmax</td><td class="num">{_pct(diag["accuracy"])}</td>'
        f'<td class="num">{diag["mean_entropy"]:.3f}</td>'
        f'<td class="num">{diag["mean_normalised_entropy"]:.3f}</td>'
        f'<td class="num">{diag["ece"]:.3f}</td>'
        f'<td class="num">{diag["mean_true_class_probability"]:.3f}</td>'
    ) in text


def test_run_facts_benchmarks_provenance_and_checksums(results_built):
    text = results_built["out"].read_text(encoding="utf-8")
    assert (
        '<td>train_distilled</td><td class="num">2</td><td class="num">6.00</td>'
        '<td class="num">3.50</td><td class="num">120.4</td>'
    ) in text
    # max_rss "-" (not measured) is shown as a dash
    assert (
        '<td>knn</td><td class="num">1</td><td class="num">0.75</td>'
        '<td class="num">0.75</td><td class="num">&ndash;</td>'
    ) in text
    assert (
        '<td><strong>all rules</strong></td><td class="num">3</td><td class="num">6.75</td>'
        '<td class="num">3.50</td><td class="num">120.4</td>'
    ) in text
    prov = results_built["summary"]["provenance"]
    assert f"<code>{'0123abcd' * 5}</code>" in text
    assert f"<code>{prov['config_hash']}</code>" in text
    assert f"numpy {prov['packages']['numpy']}" in text
    rdir = results_built["rdir"]
    assert f"<code>{prov['data_sha256']}</code> (matches the store)" in text
    assert hashlib.sha256((rdir / "split.tsv").read_bytes()).hexdigest() in text
    side = json.loads((rdir / "distances/procrustes/train-train.npy.json").read_text())
    assert f"procrustes/train-train.npy: <code>{side['sha256']}</code>" in text
    # an explicit provenance replaces the summaries'
    out = results_built["tmp"] / "prov.html"
    build_report(out, results_built["entries"], provenance={"git_revision": "feedface"})
    again = out.read_text()
    assert "<code>feedface</code>" in again and "0123abcd" not in again
    assert "No Snakemake benchmark files" in again


def test_results_report_is_deterministic_and_writes_figures(results_built):
    figs = results_built["tmp"] / "figs"
    again = results_built["tmp"] / "again" / "report.html"
    build_report(again, results_built["entries"], figs, benchmarks_dir=results_built["bench"])
    assert again.read_bytes() == results_built["out"].read_bytes()
    keys = [
        "accuracy_vs_time",
        "distances_procrustes",
        "distance_hist_procrustes",
        "dtw_path_procrustes",
        "knn_vs_k",
        "reliability_softmax",
        "soft_labels_softmax",
        "training_curves",
        "confusion_knn",
        "confusion_distilled",
        "confusion_pair",
        "per_class_accuracy",
    ]
    assert len(keys) == N_RESULT_FIGURES
    names = {p.relative_to(figs).as_posix() for p in figs.rglob("*.*")}
    slug = "Toy_friends"
    for key in keys:
        prefix = next((k for k in RESULT_FIGURE_STAGES if key.startswith(k)), None)
        stage = RESULT_FIGURE_STAGES[prefix] if prefix else figure_stage(key)
        stem = f"{stage}/{slug}_paper_{key}"
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    assert len(names) == 2 * (3 + len(keys))
    pdf = (figs / "students" / f"{slug}_paper_training_curves.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and b"matplotlib.org" not in pdf


def test_missing_result_files_skip_their_sections(results_built, tmp_path):
    rdir = tmp_path / "paper"
    shutil.copytree(results_built["rdir"], rdir)
    shutil.rmtree(rdir / "teacher")
    shutil.rmtree(rdir / "models")
    (rdir / "summary.json").unlink()
    entry = DatasetEntry("toy", results_built["entries"][0].store, results={"paper": rdir})
    out = tmp_path / "r.html"
    build_report(out, [entry])
    text = out.read_text()
    parsed = _assert_self_contained(text)
    # dataset (3), distances (2) + the DTW alignment path, k-NN curve, KNN confusion,
    # per-class bars of KNN alone
    assert len(parsed.imgs) == 3 + 3 + 1 + 1 + 1
    for key in ("dist", "knn", "confusion"):
        assert f'id="ds0-r0-{key}"' in text
    for key in ("acc", "teacher", "curves"):
        assert f'id="ds0-r0-{key}"' not in text
    assert "Not shown, files missing: Accuracy and inference speed (summary.json)" in text
    assert "No provenance recorded" in text
    # an empty results folder: every sub-section is skipped, the page still builds
    (tmp_path / "empty").mkdir()
    entry = DatasetEntry("toy", entry.store, results={"paper": tmp_path / "empty"})
    build_report(out, [entry])
    assert len(_parse(out.read_text()).imgs) == 3


def test_report_leads_with_the_comparison_of_five_families(built, tmp_path):
    rdir = _make_results(built["store"], tmp_path / "toy" / "paper", models=FIVE_CORRECT)
    out = tmp_path / "r.html"
    build_report(out, [DatasetEntry("toy", built["store"], results={"paper": rdir})])
    text = out.read_text()
    assert len(_assert_self_contained(text).imgs) == 3 + N_RESULT_FIGURES
    summary = summary_mod.read_summary(rdir / "summary.json")
    _assert_tables_match_summary(text, summary)
    cmp = summary["comparisons"]
    assert (cmp["geometry"], cmp["labels_only"]) == ("metric", "label_smoothing")
    assert cmp["differences"] == pytest.approx([3 / 12, 2 / 12])
    # the comparison leads the first results sub-section
    section = text[text.index('id="ds0-r0-acc"') :]
    assert section.index("The models compared") < section.index("Test accuracy; models")
    for mode, per_seed in FIVE_CORRECT.items():
        accs = [sum(c) / 12 for c in per_seed]
        cell = f"{_pct(np.mean(accs))} ± {_pct(np.std(accs, ddof=1))}"
        side = "geometry-taught" if mode in ("distilled", "metric") else "labels only"
        # batch 1: mean of 0.5 and 0.75; batched: best of 0.125 and 1.125
        assert (
            f'<td>{html.escape(TITLES[mode])}</td><td>{side}</td><td class="num">{cell}</td>'
            '<td class="num">2</td><td class="num">0.625</td><td class="num">0.125</td>'
        ) in text
    assert (
        '<td>KNN 1-NN (procrustes)</td><td>teacher</td><td class="num">75.00</td>'
        '<td class="num">&ndash;</td><td class="num">12.346</td>'
    ) in text
    lo, hi = (100 * x for x in cmp["ci95"])
    assert (
        "Gain of Metric distillation over Label smoothing (labels only), paired by seed: "
        f"+{100 * np.mean([3 / 12, 2 / 12]):.2f} points (95 % CI {lo:.2f} to {hi:.2f}) "
        "over 2 seed(s): 0, 1."
    ) in text
    assert "not significant" in cmp["verdict"]
    assert f"<strong>Verdict:</strong> {html.escape(cmp['verdict'])}</p>" in text
    assert "Best overall: Metric distillation, 83.33 % test accuracy." in text


def test_comparison_is_robust_to_missing_pieces():
    assert _comparison_html({}) == ""
    one = {"transformer": {"accuracy_mean": 0.5, "per_seed": {"0": 0.5}}}
    text = _comparison_html(one)
    assert "No comparison: a geometry-taught or a labels-only model is missing." in text
    assert '<td class="num">50.00</td>' + '<td class="num">&ndash;</td>' * 3 in text
    # an older summary: no comparisons, winner or per-model times, the student's time only
    model = {"accuracy_mean": 0.6, "accuracy_std": 0.0, "n_seeds": 1, "per_seed": {"0": 0.6}}
    old = {
        "transformer": {**model, "per_seed": {"0": 0.5}, "accuracy_mean": 0.5},
        "distilled": model,
        "inference": {"student_ms_per_sample": 0.4},
    }
    text = _comparison_html(old)
    assert '<td class="num">0.400</td><td class="num">&ndash;</td>' in text
    assert "distilled is ahead of transformer by 10.0 points on 1 paired seed" in text
    assert "Best overall: Distilled student, 60.00 % test accuracy." in text


def test_new_families_have_legend_labels_and_colours():
    runs = [{"epoch": [1, 2], "loss": [1.0, 0.5], "ce": [1.0, 0.5]}]
    fig = rplots.training_curves({m: runs for m in (*TITLES, "metric_ensemble")})
    ax = fig.get_axes()[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "transformer (labels only), 1 seed(s)",
        "label smoothing (labels only), 1 seed(s)",
        "distilled, 1 seed(s)",
        "metric distillation, 1 seed(s)",
        "NNGK head (labels only), 1 seed(s)",
        "metric ensemble, 1 seed(s)",
    ]
    assert len({line.get_color() for line in ax.lines}) == 6
    fig = rplots.per_class_accuracy({"A": [1.0], "KNN": [0.5]}, ["c"], {"A": "#aa3377"})
    bars = fig.get_axes()[0].patches
    assert to_hex(bars[0].get_facecolor()) == "#aa3377"
    assert to_hex(bars[1].get_facecolor()) == rplots.MODE_COLORS["knn"]
    assert mode_title("distilled_ensemble") == "Distilled student, ensemble"


def test_bad_results_are_clear_errors(results_built, tmp_path):
    store = results_built["entries"][0].store
    missing = tmp_path / "nope"
    with pytest.raises(InputError, match="results folder not found"):
        build_report(tmp_path / "r.html", [DatasetEntry("t", store, results={"p": missing})])
    rdir = tmp_path / "paper"
    shutil.copytree(results_built["rdir"], rdir)
    _write_split(store, rdir / "split.tsv", [3], [4])  # another split: matrix ids unknown
    with pytest.raises(InputError, match="row ids are not sequences of split.tsv"):
        build_report(tmp_path / "r.html", [DatasetEntry("t", store, results={"p": rdir})])
    (rdir / "knn" / "procrustes.json").write_text("{broken")
    with pytest.raises(InputError, match="not a readable JSON file"):
        build_report(tmp_path / "r.html", [DatasetEntry("t", store, results={"p": rdir})])
    assert not (tmp_path / "r.html").exists()


# ---------------------------------------------------------------------------------------------
# The results figures themselves
# ---------------------------------------------------------------------------------------------


def _labelled(fig: Figure) -> None:
    for ax in fig.get_axes():
        if ax.get_label() == "<colorbar>":
            continue
        assert ax.get_xlabel() or ax.get_ylabel(), ax


def test_distance_heatmap_orders_by_class_and_marks_boundaries():
    labels = [2, 0, 1, 0, 2, 1]
    D = np.arange(36, dtype=float).reshape(6, 6)
    fig = rplots.distance_heatmap(D, labels, ["a", "b", "c"], "procrustes")
    ax = fig.get_axes()[0]
    order = np.argsort(labels, kind="stable")  # [1, 3, 2, 5, 0, 4]
    np.testing.assert_array_equal(ax.images[0].get_array(), D[np.ix_(order, order)])
    # two boundaries, each a horizontal and a vertical line, between the class blocks
    positions = sorted(
        {
            float(line.get_ydata()[0])
            for line in ax.lines
            if line.get_ydata()[0] == line.get_ydata()[1]
        }
    )
    assert positions == [1.5, 3.5]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert "procrustes" in fig.get_axes()[1].get_ylabel()  # colour bar
    _labelled(fig)


def test_distance_distributions_split_intra_and_inter_pairs():
    D = np.array([[0, 1, 5], [1, 0, 6], [5, 6, 0]], dtype=float)
    fig = rplots.distance_distributions(D, [0, 0, 1], "euclidean")
    legend = [t.get_text() for t in fig.get_axes()[0].get_legend().get_texts()]
    assert legend == ["intra-class (1 pairs, median 1)", "inter-class (2 pairs, median 5.5)"]
    _labelled(fig)


def test_knn_curve_marks_one_nn_and_best_k():
    fig = rplots.knn_accuracy_curve({"procrustes": ({1: 0.5, 2: 0.75, 3: 0.625}, 2)})
    ax = fig.get_axes()[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["procrustes", "1-NN: 50.0 %", "best k = 2: 75.0 %"]
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), [50.0, 75.0, 62.5])
    assert ax.get_ylabel() == "test accuracy (%)"


def test_soft_label_examples_highlight_the_true_class():
    P = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]])
    fig = rplots.soft_label_examples(
        P, [0, 1, 2, 2], ["s0", "s1", "s2", "s3"], ["a", "b", "c"], "softmax"
    )
    axes = fig.get_axes()
    assert len(axes) == 4
    for ax, row, true in zip(axes, P, [0, 1, 2, 2], strict=True):
        heights = [p.get_height() for p in ax.patches]
        np.testing.assert_allclose(heights, row)
        colours = [p.get_facecolor() for p in ax.patches]
        assert colours[true] != colours[(true + 1) % 3]
    assert axes[0].get_title() == "s0 (true class a, in red)"


def test_training_curves_show_mean_and_spread_over_seeds():
    def run(loss, acc):
        ev = {"test": {"epoch": [1, 2], "accuracy": acc}}
        return {"epoch": [1, 2], "loss": loss, "ce": loss, "eval": ev}

    runs = [run([1.0, 0.5], [0.2, 0.4]), run([3.0, 1.5], [0.4, 0.8])]
    fig = rplots.training_curves({"transformer": runs, "distilled": runs[:1]})
    loss_ax, _, acc_ax = fig.get_axes()
    np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), [2.0, 1.0])
    np.testing.assert_allclose(acc_ax.lines[0].get_ydata(), [30.0, 60.0])
    band = loss_ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == 0.5 and band.max() == 3.0
    legend = [t.get_text() for t in acc_ax.get_legend().get_texts()]
    assert legend == ["transformer (labels only), 2 seed(s)", "distilled, 1 seed(s)"]
    assert acc_ax.get_ylabel() == "test accuracy (%)" and acc_ax.get_xlabel() == "epoch"


def test_confusion_and_per_class_figures():
    fig = rplots.confusion_matrix([[3, 1], [0, 4]], ["a", "b$"], "KNN 1-NN")
    ax = fig.get_axes()[0]
    assert ax.get_title() == "KNN 1-NN\naccuracy 87.5 % on 8 test sequences"
    assert [t.get_text() for t in ax.texts] == ["3", "1", "4"]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    fig = rplots.per_class_accuracy({"KNN": [1.0, 0.5], "Distilled": [0.25, np.nan]}, ["a", "b"])
    ax = fig.get_axes()[0]
    np.testing.assert_allclose([p.get_width() for p in ax.patches][:3], [100, 50, 25])
    assert ax.get_xlabel() == "test accuracy of the class (%)"
    assert plots.fig_to_png_base64(fig)


@pytest.mark.parametrize(
    ("key", "stage"),
    [
        ("lengths", "data"),
        ("distances_procrustes", "distances"),
        ("distance_hist_paper", "distances"),
        ("soft_labels_nngk", "teacher"),
        ("confusion_knn", "knn"),
        ("per_class_accuracy", "students"),
    ],
)
def test_figures_are_filed_by_stage(key, stage):
    assert figure_stage(key) == stage
    with pytest.raises(KeyError):
        figure_stage("distancesX")


def test_seed_key_orders_numeric_seeds_then_named_runs():
    seeds = ["10", "ensemble", "2", "0"]
    assert sorted(seeds, key=seed_key) == ["0", "2", "10", "ensemble"]


# ---------------------------------------------------------------------------------------------
# The answer first: the paper's tables and the winner; the figures a reader expects
# ---------------------------------------------------------------------------------------------


def _csv_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _acc_text(rec: dict, group: str, model: str) -> str:
    """The headline's accuracy cell, formatted here from the CSV record."""
    pct = rec[f"{group}_{model}_pct"]
    if group == "published" or pct == "n/a":
        return pct
    text = f"{float(pct):.2f}"
    if model == "knn":
        return f"{text} ({rec[f'{group}_knn_metric']})"
    if rec[f"{group}_{model}_n_seeds"] not in ("n/a", "1"):
        text += f" ± {float(rec[f'{group}_{model}_std_pct']):.2f}"
    return text


def _headline(text: str) -> str:
    start, end = text.index('<h2 id="headline">'), text.index('<h2 id="ds0">')
    return text[start:end]


@pytest.fixture(scope="module")
def answer_built(built, tmp_path_factory):
    """utd_mhad (five families) and its "as published" run (two), their report and tables."""
    tmp = tmp_path_factory.mktemp("answer")
    store = built["store"]
    ours = _make_results(store, tmp / "results" / "utd_mhad" / "paper", models=FIVE_CORRECT)
    asp = _make_results(store, tmp / "results" / "utd_mhad_as_published" / "paper")
    entries = [
        DatasetEntry("utd_mhad", store, results={"paper": ours}),
        DatasetEntry(
            "utd_mhad_as_published", store, results={"paper": asp}, as_published_of="utd_mhad"
        ),
    ]
    out = tmp / "report.html"
    build_report(out, entries)
    write_tables(
        tmp / "tables",
        {("utd_mhad", "paper"): ours / "summary.json"},
        {("utd_mhad", "paper"): asp / "summary.json"},
    )
    return {"tmp": tmp, "ours": ours, "asp": asp, "entries": entries, "out": out, "store": store}


def test_the_report_leads_with_the_papers_tables_as_the_csv_has_them(answer_built):
    text = answer_built["out"].read_text(encoding="utf-8")
    _assert_self_contained(text)
    # first on the page and first in the table of contents, before the datasets' details
    assert text.index('<h2 id="headline">') < text.index('<h2 id="ds0">')
    nav = text[text.index("<nav>") : text.index("</nav>")]
    assert nav.index('href="#headline"') < nav.index('href="#ds0"')
    assert '<a href="#headline-0">utd_mhad, protocol paper</a>' in nav
    head = _headline(text)
    assert '<h3 id="headline-0">UTD-MHAD, protocol paper</h3>' in head
    # one headline row: the as-published dataset fills utd_mhad's row, as in the CSV
    assert head.count("<h3 ") == 1
    (acc,) = _csv_rows(answer_built["tmp"] / "tables" / "accuracy.csv")
    (inf,) = _csv_rows(answer_built["tmp"] / "tables" / "inference.csv")
    ours = ("knn", "transformer", "distilled", "label_smoothing", "metric", "nngk")
    for group, label in (
        ("published", "Published"),
        ("as_published", "As published (our run)"),
        ("corrected", "Corrected (ours)"),
    ):
        models = ours if group == "corrected" else ours[:3]
        cells = [_acc_text(acc, group, m) for m in models] + ["n/a"] * (6 - len(models))
        row = f"<tr><td>{html.escape(label)}</td>"
        row += "".join(f'<td class="num">{c}</td>' for c in cells) + "</tr>"
        assert row in head, row
        if group == "published":
            speeds = [acc and inf["published_student_ms"]] + ["n/a"] * 4
        else:
            speeds = [
                f"{float(inf[f'{group}_{k}_ms']):.3f}"
                for k in ("student_batch1", "student_batched", "knn")
            ]
            speeds += [
                f"{float(inf[f'{group}_{k}_x']):.1f}" for k in ("speedup", "speedup_batched")
            ]
        row = f"<tr><td>{html.escape(label)}</td>"
        row += "".join(f'<td class="num">{c}</td>' for c in speeds) + "</tr>"
        assert row in head, row
    # the published values as printed, and the runs' own numbers
    assert acc["published_distilled_pct"] == "64.91" and acc["published_knn_pct"] == "32.0"
    summary = summary_mod.read_summary(answer_built["ours"] / "summary.json")
    cell = _acc_text(acc, "corrected", "metric")
    assert cell.startswith(f"{100 * summary['metric']['accuracy_mean']:.2f} ± ")
    asp = summary_mod.read_summary(answer_built["asp"] / "summary.json")
    assert _acc_text(acc, "as_published", "distilled").startswith(
        f"{100 * asp['distilled']['accuracy_mean']:.2f}"
    )


def test_the_headline_says_which_model_wins_and_by_how_much(answer_built):
    head = _headline(answer_built["out"].read_text(encoding="utf-8"))
    summary = summary_mod.read_summary(answer_built["ours"] / "summary.json")
    win, cmp = summary["winner"], summary["comparisons"]
    assert win["model"] == "metric"
    k1 = summary["knn"]["procrustes"]["k1_accuracy"]
    assert (
        f"<strong>Best overall: Metric distillation</strong>, {_pct(win['accuracy'])} % test "
        f"accuracy (mean over 2 seed(s)), {100 * (win['accuracy'] - k1):+.2f} points against "
        f"the exact KNN 1-NN (procrustes) it learns from ({_pct(k1)} %)."
    ) in head
    lo, hi = (100 * x for x in cmp["ci95"])
    assert (
        "the best geometry-taught model, Metric distillation at 83.33 %, against the best "
        "labels-only one, Label smoothing (labels only) at 62.50 %: "
        f"{100 * cmp['mean_difference']:+.2f} points (geometry ahead), mean of the per-seed "
        f"differences over 2 paired seed(s), 95 % CI {lo:+.2f} to {hi:+.2f}."
    ) in head
    assert f"<strong>Verdict:</strong> {html.escape(cmp['verdict'])}" in head


@pytest.mark.slow  # two more reports: ~50 s on a Zen 1
def test_an_as_published_run_is_linked_by_its_setting_too(answer_built, tmp_path):
    a, b = answer_built["entries"]
    renamed = DatasetEntry("original", b.store, results=b.results, as_published_of="utd_mhad")
    out = tmp_path / "r.html"
    build_report(out, [a, renamed])
    head = _headline(out.read_text())
    assert head == _headline(answer_built["out"].read_text())
    # without the link the run is a dataset of its own, with its own row, whatever its name
    build_report(out, [a, DatasetEntry("original", b.store, results=b.results)])
    assert _headline(out.read_text()).count("<h3 ") == 2
    build_report(out, [a, DatasetEntry("utd_mhad_as_published", b.store, results=b.results)])
    assert _headline(out.read_text()).count("<h3 ") == 2


def test_the_cli_links_an_as_published_run_and_names_a_bad_link(answer_built, tmp_path):
    from geokd.cli import main

    a, b = answer_built["entries"]
    out = tmp_path / "r.html"
    args = ["report", str(out), "--dataset", f"utd_mhad={a.store}", "--dataset", f"orig={b.store}"]
    args += ["--results", f"utd_mhad/paper={a.results['paper']}"]
    args += ["--results", f"orig/paper={b.results['paper']}"]
    assert main([*args, "--as-published-of", "orig=utd_mhad"]) == 0
    assert _headline(out.read_text()) == _headline(answer_built["out"].read_text())
    assert main([*args, "--as-published-of", "orig=nothing"]) == 2


def test_no_results_no_headline(built):
    text = built["out"].read_text(encoding="utf-8")
    assert 'id="headline"' not in text and "#headline" not in text


def _alts(text: str) -> list[str]:
    return re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="([^"]*)"', text)


def test_new_figures_are_there_with_their_inputs_and_absent_without(results_built, tmp_path):
    alts = _alts(results_built["out"].read_text(encoding="utf-8"))
    wanted = (
        "test accuracy against inference time",
        "DTW alignment path of ",
        "reliability diagram of the teacher, softmax",
        "confusion matrices of the labels-only transformer and the distilled student",
    )
    for alt in wanted:
        assert sum(a.startswith(alt) for a in alts) == 1, alt
    rdir = tmp_path / "paper"
    shutil.copytree(results_built["rdir"], rdir)
    for name in ("test-train.npy", "test-train.npy.json"):
        (rdir / "distances" / "procrustes" / name).unlink()
    shutil.rmtree(rdir / "models" / "distilled")
    (rdir / "teacher" / "softmax.parquet").unlink()
    summary = json.loads((rdir / "summary.json").read_text())
    del summary["inference"]
    (rdir / "summary.json").write_text(json.dumps(summary))
    entry = DatasetEntry("toy", results_built["entries"][0].store, results={"paper": rdir})
    out = tmp_path / "r.html"
    build_report(out, [entry])
    text = out.read_text()
    alts = _alts(text)
    for alt in wanted:
        assert not any(a.startswith(alt) for a in alts), alt
    assert "train x train distance matrix, procrustes" in alts  # the rest is still there
    # gone too: the soft-label examples (no Parquet), the distilled confusion matrix
    assert len(alts) == 3 + N_RESULT_FIGURES - 4 - 2


def test_the_dtw_path_helper_ends_at_cdist():
    from geokd.distances import cdist, reference

    rng = np.random.default_rng(3)
    a = np.cumsum(rng.normal(scale=0.05, size=(13, 20, 3)), axis=0) + rng.normal(size=(20, 3))
    b = np.cumsum(rng.normal(scale=0.05, size=(9, 20, 3)), axis=0) + rng.normal(size=(20, 3))
    for window in (None, 2):
        cost = reference.cost_matrix(a, b, "procrustes")
        path, total = rplots.dtw_path(cost, window)
        want = float(cdist([a], [b], metric="procrustes", window=window)[0, 0])
        assert abs(total - want) <= 1e-9 * max(1.0, abs(want))
        assert total == pytest.approx(reference.dtw(cost, window), abs=1e-12)
        # a warping path: (0, 0) to (m-1, n-1) in unit steps, its costs sum to the distance
        assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (12, 8)
        steps = {tuple(s) for s in np.diff(path, axis=0)}
        assert steps <= {(1, 0), (0, 1), (1, 1)}
        assert cost[path[:, 0], path[:, 1]].sum() == pytest.approx(total, rel=1e-12)
        if window is not None:
            assert np.abs(path[:, 0] - path[:, 1]).max() <= max(window, 13 - 9)
    # the figure draws that path over that matrix
    fig = rplots.alignment_path(cost, path, total, "q", "r", "procrustes")
    ax = fig.get_axes()[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), cost)
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), path[:, 1])
    assert f"distance {total:.4g}" in ax.get_title()
    _labelled(fig)


def test_reliability_diagram_uses_the_teachers_bins_and_ece():
    rng = np.random.default_rng(5)
    P = rng.dirichlet(np.ones(4) * 0.5, size=200)
    y = rng.integers(0, 4, size=200)
    diag = diagnostics(P, y)
    res = aplots.reliability_bins(P, y, diag["ece_bins"])
    assert res["ece"] == pytest.approx(diag["ece"], abs=1e-15)
    assert res["count"].sum() == 200
    fig = aplots.reliability_diagram(P, y, "softmax", diag["ece_bins"])
    top, bottom = fig.get_axes()
    assert f"ECE {diag['ece']:.3f}" in top.get_title()
    np.testing.assert_array_equal(top.lines[0].get_xdata(), [0, 1])  # the diagonal, in %
    np.testing.assert_array_equal(top.lines[0].get_ydata(), [0, 100])
    filled = res["count"] > 0
    heights = [p.get_height() for p in top.patches]
    np.testing.assert_allclose(heights, 100 * res["accuracy"][filled])
    assert [p.get_height() for p in bottom.patches] == res["count"].tolist()
    _labelled(fig)


def test_accuracy_against_time_and_the_confusion_pair():
    points = [
        {"label": "T", "mode": "transformer", "ms": 0.5, "accuracy": 0.8, "std": 0.05},
        {"label": "KNN", "mode": "knn", "ms": 50.0, "accuracy": 0.7},
    ]
    fig = aplots.accuracy_vs_time(points)
    ax = fig.get_axes()[0]
    assert ax.get_xscale() == "log"
    xy = [tuple(line.get_xydata()[0]) for line in ax.lines if len(line.get_xdata()) == 1]
    assert (0.5, 80.0) in xy and (50.0, 70.0) in xy
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["T", "KNN"]
    _labelled(fig)
    fig = aplots.confusion_pair([[3, 1], [0, 4]], [[2, 2], [1, 3]], ["a", "b"], "L", "R")
    left, right = (ax for ax in fig.get_axes() if ax.get_label() != "<colorbar>")
    assert left.images[0].get_clim() == right.images[0].get_clim() == (0, 1)
    for ax in (left, right):
        assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b"]
    assert left.get_title() == "L\naccuracy 87.5 %" and right.get_title() == "R\naccuracy 62.5 %"
    assert plots.fig_to_png_base64(fig)
