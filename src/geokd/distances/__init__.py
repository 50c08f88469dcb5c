"""Procrustes-DTW distances between landmark sequences, and their blocks (shards).

Owns the public distance API (:func:`cdist`, :func:`prepare`, :func:`knn_query`,
:func:`pair_distance`, :func:`frame_cost_matrix`; contract in :mod:`._cdist`), the numba
kernels (:mod:`._kernels`), the PyTorch backend (:mod:`._torch`), the plain reference
implementation every fast path is tested against (:mod:`.reference`; its :func:`dtw_path`, the
optimal warping path of a frame-cost matrix, is public), and the distance
blocks the workflow computes as separate jobs and assembles (:mod:`.shards`).
"""

from ..lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(
        [
            "BACKENDS",
            "METRICS",
            "HAND_DEFAULTS",
            "HAND_SIZE",
            "cdist",
            "prepare",
            "knn_query",
            "pair_distance",
            "frame_cost_matrix",
        ],
        "_cdist",
    ),
    **dict.fromkeys(["PreparedSequences", "matrix_from_pairs"], "_prepared"),
    "dtw_path": "reference",
    **dict.fromkeys(["NORMALISATIONS", "load_used", "normalise_distances"], "normalise"),
    **dict.fromkeys(
        [
            "MatrixSpec",
            "assemble",
            "compute_block",
            "load_aligned",
            "load_matrix",
            "matrix_pairs",
            "planned_blocks",
            "select_sequences",
            "split_ids",
        ],
        "shards",
    ),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
