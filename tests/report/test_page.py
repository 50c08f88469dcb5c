"""geokd.report.page and geokd.report.html: the data section of the report (a toy store and
two split tables), self-contained HTML, escaping, determinism, figure files and their stage
folders, and clear errors for missing or mismatched inputs."""

from __future__ import annotations

import base64
import hashlib
import html
import re

import numpy as np
import pytest

import geokd
from geokd.data.store import load_sequences
from geokd.errors import InputError
from geokd.report.html import figure_stage
from geokd.report.page import DatasetEntry, build_report
from tests.helpers.report import (
    EVIL,
    PNG_SIGNATURE,
    parse_html,
    write_split_table,
)


def test_report_is_self_contained_with_valid_embedded_pngs(built):
    text = built["out"].read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    parsed = parse_html(text)
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
    other = write_split_table(built["store"], tmp_path / "other.tsv", [1], [2])
    other.write_text(other.read_text() + "ghost\t0\t1\t1\ttrain\n")
    entry = DatasetEntry(name="x", store=built["store"], splits={"p": other})
    with pytest.raises(InputError, match=r"1 sequence id\(s\) not in the store"):
        build_report(tmp_path / "r.html", [entry])


def test_no_datasets_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no datasets"):
        build_report(tmp_path / "r.html", [])


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
