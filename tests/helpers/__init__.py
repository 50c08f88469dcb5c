"""What the tests share: runners of Snakemake, DVC and other commands, tiny configs, fake data,
the SLURM test cluster, the browser check and the session's process guard.

Test modules import from here (and use fixtures from the conftest files), never from each other
(tests/test_architecture.py checks it).
"""
