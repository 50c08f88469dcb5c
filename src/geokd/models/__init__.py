"""Classifiers: the KNN baseline, the teachers' soft labels and the students.

Owns exact k-NN on distance matrices (:mod:`.knn`), the teachers that turn the train x train
matrix into soft class probabilities (:mod:`.teacher`), the transformer student
(:mod:`.student`), its training (:mod:`.train`: several seeds at once as one :mod:`.batched`
model), losses and checkpoints (:mod:`.losses`, :mod:`.checkpoint`) and the accuracy metrics
shared by all of them (:mod:`.metrics`).
"""

from ..lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["knn_evaluate", "knn_latency", "knn_predict", "neighbours", "run_knn"], "knn"),
    **dict.fromkeys(["metrics", "as_labels"], "metrics"),
    **dict.fromkeys(
        ["make_soft_labels", "nngk_teacher", "read_soft_labels", "softmax_teacher"], "teacher"
    ),
    **dict.fromkeys(["SkeletonTransformer", "StudentConfig", "augment", "prepare"], "student"),
    **dict.fromkeys(["TrainConfig", "evaluate", "predict_proba", "train", "train_many"], "train"),
    **dict.fromkeys(["distillation_loss", "kd_loss"], "losses"),
    "BatchedStudent": "batched",
    **dict.fromkeys(["run_training", "run_trainings"], "runs"),
    **dict.fromkeys(["Student", "load_student", "read_inputs", "run_predict"], "predict"),
    **dict.fromkeys(["export_student", "run_exported"], "export"),
    **dict.fromkeys(
        ["load_checkpoint", "save_checkpoint", "checkpoint_bytes", "latency_ms_per_sample"],
        "checkpoint",
    ),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
