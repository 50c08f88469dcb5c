"""geokd: geometric knowledge distillation of motion sequences.

Procrustes-DTW distances between skeleton sequences, a KNN baseline, soft labels
(the teacher) and a distilled transformer student, run as a Snakemake workflow.
"""

__version__ = "0.1.0"

from .lazy import lazy_exports

#: ``geokd.load_student(path).predict(sequences)``: a trained student on new recordings.
_EXPORTS = {"load_student": "models.predict", "Student": "models.predict"}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
