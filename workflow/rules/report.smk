# Everything -> results/report.html (one self-contained page) and the paper's tables.


rule report_html:
    input:
        unpack(report_inputs),
        tables=paths.ACCURACY_CSV,
    output:
        html=report(
            paths.REPORT,
            caption="../report/report_html.rst",
            category="Report",
        ),
        # PNG + PDF of every figure, one sub-folder per stage; the PNGs go into Snakemake's
        # native report (--report), filed by stage, each with its caption
        figures=report(
            directory(paths.FIGURES),
            patterns=["{stage}/{name}.png"],
            caption="../report/figure.rst",
            category="Figures",
            subcategory="{stage}",
            labels={"stage": "{stage}", "figure": "{name}"},
        ),
    log:
        paths.log("report_html", "report"),
    benchmark:
        paths.benchmark("report_html", "report")
    conda:
        "../envs/report.yaml"
    params:
        args=report_args,
        benchmarks=paths.BENCHMARKS,
        code=CODE["report"],
    shell:
        "exec python -m geokd report {output.html:q} {params.args:q}"
        " --figures {output.figures:q} --benchmarks {params.benchmarks:q} > {log:q} 2>&1"


rule paper_tables:
    input:
        all_summaries(),
    output:
        accuracy_csv=report(
            paths.ACCURACY_CSV,
            caption="../report/tables.rst",
            category="Tables",
        ),
        accuracy_tex=paths.ACCURACY_TEX,
        inference_csv=report(
            paths.INFERENCE_CSV,
            caption="../report/tables.rst",
            category="Tables",
        ),
        inference_tex=paths.INFERENCE_TEX,
    log:
        paths.log("paper_tables", "tables"),
    benchmark:
        paths.benchmark("paper_tables", "tables")
    conda:
        "../envs/report.yaml"
    params:
        args=tables_args,
        out_dir=subpath(output.accuracy_csv, parent=True),
        code=CODE["report"],
    shell:
        "exec python -m geokd tables {params.out_dir:q} {params.args:q} > {log:q} 2>&1"
