# The summary's and the report's input functions, and the workflow's targets (all_outputs):
# what the last stage reads (rules/summary.smk, rules/report.smk, rule all in the Snakefile).
from geokd.report.missing import mark_missing  # noqa: E402


def checked(d, p):
    """The checksummed models and soft labels of a protocol: read (and checked) by its summary."""
    soft_labels = [
        at(paths.SOFT_LABELS, dataset=d, protocol=p, method=m) for m in SETTINGS[d].teacher.methods
    ]
    return seed_runs(paths.RUN_MODEL, d, p) + soft_labels


def summary_files(d, p):
    """What the summary of protocol p of dataset d reads, by kind (its named inputs)."""
    s, w = SETTINGS[d], dict(dataset=d, protocol=p)
    ensembles = lambda template: [at(template, w, model=m) for m in s.training.ensembles]
    return {
        "store": store_path(d),
        "split": split_path(d, p),  # `--speed`: the test sequences timed
        "knn": [at(paths.KNN_RESULT, w, metric=m) for m in s.metrics],
        "latency": [at(paths.KNN_LATENCY, w, metric=s.teacher.metric)],
        "teachers": [at(paths.TEACHER_DIAGNOSTICS, w, method=m) for m in s.teacher.methods],
        "runs": seed_runs(paths.RUN_METRICS, d, p) + ensembles(paths.ENSEMBLE_METRICS),
        "run_timings": seed_runs(paths.RUN_TIMINGS, d, p) + ensembles(paths.ENSEMBLE_TIMINGS),
        "checked": checked(d, p),  # `geokd summarize --check`: a damaged one stops it
        "sidecars": [paths.sidecar(path) for path in checked(d, p)],
    }


def summary_inputs(wildcards):
    return summary_files(wildcards.dataset, wildcards.protocol)


def whole_machine(wildcards):
    """Every core Snakemake may use (--cores), so that no other job runs beside the summary
    while it times inference on one thread; 1 where no --cores is given (a cluster: the
    job gets a CPU of its own)."""
    return workflow.resource_settings.cores or 1


def histories(wildcards):
    return seed_runs(paths.RUN_HISTORY, wildcards.dataset, wildcards.protocol)


def history_args(wildcards, input):
    return [f"{Path(h).parts[-3]}={h}" for h in input.histories]


def reported():
    """Every file the report reads or stands on: the paper's tables; by protocol, what its
    summary reads (models and soft labels with their checksum sidecars, KNN, teacher, the
    runs' metrics and timings), the runs' histories, the matrices with their sidecars,
    summary and timings."""
    files = [*paths.TABLE_FILES, *all_matrices(), *map(paths.sidecar, all_matrices())]
    for d, p in protocols():
        for kind in summary_files(d, p).values():
            files += [kind] if isinstance(kind, str) else kind
        files += seed_runs(paths.RUN_HISTORY, d, p)
        files += [at(t, dataset=d, protocol=p) for t in (paths.SUMMARY, paths.TIMINGS)]
    files += budget_targets()  # the label-budget study (budgets.smk), its figure and table
    return list(dict.fromkeys(files))


def report_inputs(wildcards):
    """The report's inputs; `missing`, a marker rewritten when one of them is missing, makes
    the report (and so whatever it needs that is lost) run again (geokd.report.missing)."""
    files = reported()
    return dict(files=files, missing=mark_missing(files, paths.MISSING_MARKER))


def report_args(wildcards):
    """The report's arguments (a list, for {params.args:q})."""
    args = [a for d in SETTINGS for a in ("--dataset", f"{d}={store_path(d)}")]
    args += [f"--as-published-of={d}={published_of(d)}" for d in SETTINGS if published_of(d)]
    for flag, path in (("--split", split_path), ("--results", protocol_dir)):
        args += [a for d, p in protocols() for a in (flag, f"{d}/{p}={path(d, p)}")]
    return args


def tables_args(wildcards):
    """Corrected runs as --summary, "as published" ones fill their original's column."""
    option = {True: "--as-published", False: "--summary"}
    args = []
    for d, p in protocols():
        summary = f"{published_of(d) or d}/{p}={at(paths.SUMMARY, dataset=d, protocol=p)}"
        args += [option[bool(published_of(d))], summary]
    return args


def all_outputs():
    """Report, tables, summaries, DVC's files and every checksummed artifact, by name."""
    per_protocol = (paths.SUMMARY, paths.DVC_METRICS, paths.CURVES)
    return [
        paths.REPORT,
        paths.ACCURACY_CSV,
        *all_matrices(),
        *[at(t, dataset=d, protocol=p) for d, p in protocols() for t in per_protocol],
        *[f for d, p in protocols() for path in checked(d, p) for f in (path, paths.sidecar(path))],
    ]
