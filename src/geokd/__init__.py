"""geokd: geometric knowledge distillation of motion sequences.

Procrustes-DTW distances between skeleton sequences, a KNN baseline, soft labels
(the teacher) and a distilled transformer student, run as a Snakemake workflow.
"""

__version__ = "0.1.0"
