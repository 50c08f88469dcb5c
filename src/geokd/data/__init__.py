"""Sequence data: the canonical store, skeleton topologies, splits and the dataset readers.

Owns the Parquet sequence store (:mod:`.store`), the skeleton tables (:mod:`.skeleton`),
subject-wise splits (:mod:`.splits`), the seeded synthetic datasets (:mod:`.synthetic`,
:mod:`.signum_synthetic`), the UTD-MHAD and SIGNUM readers (:mod:`.utd_mhad`,
:mod:`.signum`) and the table of rejected raw files (:mod:`.rejected`). Every reader converts
to the canonical format: one (T, K, 3) float array per sequence (``config/README.md``).
"""

from ..lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(
        [
            "StoreInfo",
            "load_sequences",
            "load_meta",
            "read_info",
            "write_store",
            "validate_sequence",
        ],
        "store",
    ),
    **dict.fromkeys(["SPLITS", "assign_splits", "read_split", "write_split"], "splits"),
    **dict.fromkeys(
        ["UTD_MHAD_JOINTS", "UTD_MHAD_BONES", "UTD_MHAD_ACTIONS", "HAND_LANDMARKS", "HAND_BONES"],
        "skeleton",
    ),
    **dict.fromkeys(["SyntheticConfig", "generate", "write_synthetic"], "synthetic"),
    **dict.fromkeys(["SignumSyntheticConfig", "write_synthetic_signum"], "signum_synthetic"),
    **dict.fromkeys(["Rejected", "write_rejected"], "rejected"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
