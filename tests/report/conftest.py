"""Fixtures of the report tests, built once per session and only read by the tests (a test
that changes one works on a copy): the toy store and its data report (``built``), with a
hand-made results folder (``results_built``), and the "answer first" report of two datasets
with their tables (``answer_built``)."""

from __future__ import annotations

import json

import pytest

from geokd.report.page import DatasetEntry, build_report
from geokd.report.tables import write_tables
from tests.helpers.report import (
    FIVE_CORRECT,
    make_results,
    make_store,
    write_benchmarks,
    write_split_table,
)


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """A store, two split tables and the report built from them."""
    tmp = tmp_path_factory.mktemp("report")
    store = make_store(tmp / "toy.parquet")
    splits = {
        "paper": write_split_table(store, tmp / "paper.tsv", [1, 2], [4], val=[3]),
        "cross_subject": write_split_table(store, tmp / "xs.tsv", [1, 3], [2]),
    }
    entries = [DatasetEntry(name="Toy & friends", store=store, splits=splits)]
    out = tmp / "results" / "report.html"
    build_report(out, entries)
    return {"tmp": tmp, "store": store, "splits": splits, "entries": entries, "out": out}


@pytest.fixture(scope="session")
def results_built(built):
    """The toy store with a hand-made results folder and benchmarks, and its report."""
    tmp = built["tmp"] / "with_results"
    rdir = make_results(built["store"], tmp / "results" / "toy" / "paper")
    bench = write_benchmarks(tmp / "benchmarks")
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


@pytest.fixture(scope="session")
def answer_built(built, tmp_path_factory):
    """utd_mhad (five families) and its "as published" run (two), their report and tables."""
    tmp = tmp_path_factory.mktemp("answer")
    store = built["store"]
    ours = make_results(store, tmp / "results" / "utd_mhad" / "paper", models=FIVE_CORRECT)
    asp = make_results(store, tmp / "results" / "utd_mhad_as_published" / "paper")
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
