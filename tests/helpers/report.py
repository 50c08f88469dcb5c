"""The report tests' shared inputs and checks: a toy store (3 classes, one with an HTML-
injecting name, x 4 subjects x 2 trials), split tables, a hand-made results folder with its
summary.json, benchmarks, and the checks of a self-contained page and of its tables against a
summary. The fixtures built from them are in tests/report/conftest.py.
"""

from __future__ import annotations

import base64
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from geokd.data.skeleton import UTD_MHAD_BONES, UTD_MHAD_JOINTS
from geokd.data.store import StoreInfo, load_sequences, write_store
from geokd.distances.shards import write_npy_with_sidecar
from geokd.models.teacher import diagnostics, write_soft_labels
from geokd.report import summary as summary_mod
from geokd.report.results import mode_title, seed_key

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


EVIL = '<script>alert("x")</script>'


CLASSES = ["wave", "clap", EVIL]


SUBJECTS = (1, 2, 3, 4)


TRIALS = (1, 2)


class HtmlCollector(HTMLParser):
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


def parse_html(text: str) -> HtmlCollector:
    parser = HtmlCollector()
    parser.feed(text)
    parser.close()
    return parser


def make_store(path: Path, seed: int = 0) -> Path:
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


def write_split_table(store: Path, out: Path, train, test, val=()) -> Path:
    _, meta = load_sequences(store)
    owner = {s: k for k, subs in (("train", train), ("val", val), ("test", test)) for s in subs}
    table = meta[["sequence_id", "label", "subject", "trial"]].copy()
    table["split"] = table["subject"].map(owner)
    table = table[table["split"].notna()]
    out.write_text(table.to_csv(sep="\t", index=False, lineterminator="\n"))
    return out


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


def assert_self_contained(text: str) -> HtmlCollector:
    """No script, no external reference; every <img> a valid PNG data URI; anchors exist."""
    parsed = parse_html(text)
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


def class_metrics(correct: tuple[int, ...]) -> dict:
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


def write_json(path: Path, obj: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True))
    return path


def make_results(
    store: Path, rdir: Path, protocol: str = "paper", models: dict = MODEL_CORRECT
) -> Path:
    """A results folder like the workflow's, from hand-made files, with a summary.json;
    ``models``: family -> correct test answers per class, one tuple per seed."""
    rng = np.random.default_rng(7)
    rdir.mkdir(parents=True, exist_ok=True)
    split = write_split_table(store, rdir / "split.tsv", [1, 2], [3, 4])
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
        write_json(
            teacher / "softmax.json", {**diagnostics(P, y), "method": "softmax", "params": params}
        )
    ]
    per_k = {str(k): {"k": k, **class_metrics(c)} for k, c in KNN_CORRECT.items()}
    knn = [
        write_json(
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
        write_json(
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
            write_json(run / "history.json", history)
            metrics = {
                "mode": mode,
                "seed": seed,
                "epoch": 5,
                "class_names": CLASSES,
                "test": class_metrics(correct),
                "train": class_metrics((4, 4, 4)),
                "latency_ms_per_sample": {"batch_1": 0.5 + 0.25 * seed, "batch_16": 0.125 + seed},
            }
            runs.append(write_json(run / "metrics.json", metrics))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(summary_mod, "git_revision", lambda: "0123abcd" * 5)
        summary_mod.summarize(
            rdir / "summary.json",
            knn=knn,
            teachers=teachers,
            runs=runs,
            latency=latency,
            store=store,
            config={"seed": 0, "training": {"comparisons": [["metric", "label_smoothing"]]}},
            dataset="toy",
            protocol=protocol,
        )
    return rdir


def write_benchmarks(root: Path) -> Path:
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


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def assert_tables_match_summary(text: str, summary: dict) -> None:
    """The accuracy and inference tables of a protocol show the summary's numbers."""
    for metric, res in summary["knn"].items():
        f1 = res["macro_f1_per_k"]
        assert (
            f'<td>KNN 1-NN ({metric})</td><td class="num">{pct(res["k1_accuracy"])}</td>'
            f'<td class="num">{pct(f1["1"])}</td>'
        ) in text
        k = res["best_k"]
        assert (
            f"<td>KNN best k = {k} ({metric}; k chosen on test: optimistic)</td>"
            f'<td class="num">{pct(res["best_accuracy"])}</td>'
            f'<td class="num">{pct(f1[str(k)])}</td>'
        ) in text
    for mode in summary_mod.model_names(summary):
        title = html.escape(TITLES.get(mode) or mode_title(mode))
        res = summary[mode]
        # one run (an ensemble) has no spread to show
        cell = pct(res["accuracy_mean"])
        if res["n_seeds"] > 1:
            cell += f" ± {pct(res['accuracy_std'])}"
        seeds = ", ".join(
            f"{s}: {pct(a)}"
            for s, a in sorted(res["per_seed"].items(), key=lambda x: seed_key(x[0]))
        )
        # a seed ensemble is one model of its members' seeds
        n = f"one model of {len(res['members'])} seeds" if "members" in res else res["n_seeds"]
        assert (
            f'<td>{title}</td><td class="num">{cell}</td>'
            f'<td class="num">{pct(res["macro_f1_mean"])}</td>'
            f'<td class="num">{n}</td><td class="num">{seeds}</td>'
        ) in text
    inf = summary["inference"]
    for key, unit in (
        ("student_ms_per_sample", "ms/sample"),
        ("student_ms_per_sample_batched", "ms/sample"),
        ("knn_ms_per_sample", "ms/query"),
    ):
        assert f'<td class="num">{inf[key]:.3f}</td><td>{unit}</td>' in text
    assert f'<td class="num">{inf["speedup"]:.1f}</td><td>&times;</td>' in text


def assert_labelled(fig: Figure) -> None:
    for ax in fig.get_axes():
        if ax.get_label() == "<colorbar>":
            continue
        assert ax.get_xlabel() or ax.get_ylabel(), ax


def csv_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def acc_text(rec: dict, group: str, model: str) -> str:
    """The headline's accuracy cell, formatted here from the CSV record."""
    pct = rec.get(f"{group}_{model}_pct", "n/a")  # a family the group did not train: n/a
    if group == "published" or pct == "n/a":
        return pct
    text = f"{float(pct):.2f}"
    if model == "knn":
        return f"{text} ({rec[f'{group}_knn_metric']})"
    if rec[f"{group}_{model}_n_seeds"] not in ("n/a", "1"):
        text += f" ± {float(rec[f'{group}_{model}_std_pct']):.2f}"
    return text


def headline_html(text: str) -> str:
    start, end = text.index('<h2 id="headline">'), text.index('<h2 id="ds0">')
    return text[start:end]


def image_alts(text: str) -> list[str]:
    return re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="([^"]*)"', text)
