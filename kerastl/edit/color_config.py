"""The settings of a colour-correction run, with no TensorFlow imported (the CLI reads its
defaults here); ``config.json`` records them to repeat or resume a run."""

from __future__ import annotations

import dataclasses

from kerastl.distribute import ScaleSettings
from kerastl.settings import DataSelection, RunSettings, check_choice, check_settings
from kerastl.transfer.config import PHASE_RANGES, PhaseSettings
from kerastl.transfer.schedule import SCHEDULES, parse_unfreeze

#: The side the model sees when neither ``image_size`` nor a pretrained run gives one.
DEFAULT_SIZE = 96


@dataclasses.dataclass
class ColorConfig(ScaleSettings, DataSelection, RunSettings, PhaseSettings):
    """Every setting of a colour-correction run; saved as ``config.json``.

    Each epoch sees ``copies`` differently degraded versions of every training
    image, with parameters drawn uniformly within each adjustment's range times
    ``strength``. The loss is the parameters' range-normalised squared error
    plus ``image_loss_weight`` x the corrected image's L1 distance to the clean
    one in Lab (divided by 100). ``image_size`` defaults to the saved backbone's
    size when ``weights`` is a run, else 96 px: global colour needs little detail.
    The epoch of lowest validation loss is kept; ``patience`` epochs without a
    better one end a phase early.
    """

    data: str
    strength: float = 1.0
    copies: int = 8
    finetune_epochs: int = 6
    schedule: str = "constant"
    image_loss_weight: float = 1.0
    val_fraction: float = 0.2

    def __post_init__(self):
        from kerastl.transfer.model import pretrained_run_backbone

        check_settings(self, [*PHASE_RANGES, *_RANGES])
        check_choice(self, "schedule", SCHEDULES)
        parse_unfreeze(self.unfreeze)
        self.data = str(self.data)
        self._settle_weights()
        if self.image_size is None and pretrained_run_backbone(self.weights) is None:
            self.image_size = DEFAULT_SIZE


#: (setting, low, high, low is open): what ColorConfig accepts beyond the shared settings.
_RANGES = [("image_size", 16, None, False), ("strength", 0.05, 1, False),
           ("copies", 1, None, False), ("finetune_epochs", 0, None, False),
           ("image_loss_weight", 0, None, False), ("val_fraction", 0.05, 0.9, False)]
