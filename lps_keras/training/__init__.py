"""Training utilities: epoch-based learning-rate and temperature schedules, weight decay."""

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
from lps_keras.training.temperature import (
    TAU_RECIPES,
    TauSchedule,
    make_tau_schedule,
)

__all__ = [
    "SCHEDULES",
    "ConstantSchedule",
    "CosineSchedule",
    "MultiStepSchedule",
    "PolySchedule",
    "StepSchedule",
    "TAU_RECIPES",
    "TauSchedule",
    "exclude_from_weight_decay",
    "make_lr_schedule",
    "make_tau_schedule",
]
