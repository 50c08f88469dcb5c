# Everything -> results/report.html (one self-contained page).


rule report_html:
    input:
        unpack(report_inputs),
    output:
        report(
            "results/report.html",
            caption="../report/report_html.rst",
            category="Report",
        ),
    log:
        "logs/report_html/report.log",
    benchmark:
        "benchmarks/report_html/report.tsv"
    conda:
        "../envs/report.yaml"
    params:
        args=report_args,
    shell:
        "python -m geokd report {output} {params.args} > {log} 2>&1"
