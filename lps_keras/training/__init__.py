"""Training utilities: epoch-based learning-rate schedules and weight-decay helpers."""

from lps_keras.training.schedules import (
    SCHEDULES,
    ConstantSchedule,
    CosineSchedule,
    MultiStepSchedule,
    PolySchedule,
    StepSchedule,
    exclude_from_weight_decay,
    make_lr_schedule,
)

__all__ = [
    "SCHEDULES",
    "ConstantSchedule",
    "CosineSchedule",
    "MultiStepSchedule",
    "PolySchedule",
    "StepSchedule",
    "exclude_from_weight_decay",
    "make_lr_schedule",
]
