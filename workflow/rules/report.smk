# Everything -> results/report.html (one self-contained page) and the paper's tables.


rule report_html:
    input:
        unpack(report_inputs),
        tables="results/tables/accuracy.csv",
    output:
        html=report(
            "results/report.html",
            caption="../report/report_html.rst",
            category="Report",
        ),
        # PNG + PDF of every figure, one sub-folder per stage; the PNGs go into Snakemake's
        # native report (--report), filed by stage, each with its caption
        figures=report(
            directory("results/figures"),
            patterns=["{stage}/{name}.png"],
            caption="../report/figure.rst",
            category="Figures",
            subcategory="{stage}",
            labels={"stage": "{stage}", "figure": "{name}"},
        ),
    log:
        "logs/report_html/report.log",
    benchmark:
        "benchmarks/report_html/report.tsv"
    conda:
        "../envs/report.yaml"
    params:
        args=report_args,
        code=CODE["report"],
    shell:
        "exec python -m geokd report {output.html:q} {params.args:q}"
        " --figures {output.figures:q} --benchmarks benchmarks > {log:q} 2>&1"


rule paper_tables:
    input:
        all_summaries(),
    output:
        accuracy_csv=report(
            "results/tables/accuracy.csv",
            caption="../report/tables.rst",
            category="Tables",
        ),
        accuracy_tex="results/tables/accuracy.tex",
        inference_csv=report(
            "results/tables/inference.csv",
            caption="../report/tables.rst",
            category="Tables",
        ),
        inference_tex="results/tables/inference.tex",
    log:
        "logs/paper_tables/tables.log",
    benchmark:
        "benchmarks/paper_tables/tables.tsv"
    conda:
        "../envs/report.yaml"
    params:
        args=tables_args,
        out_dir=subpath(output.accuracy_csv, parent=True),
        code=CODE["report"],
    shell:
        "exec python -m geokd tables {params.out_dir:q} {params.args:q} > {log:q} 2>&1"
