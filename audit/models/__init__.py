"""The registry of trainable architectures and the training loop."""

from audit.models import architectures  # noqa: F401  (registers the architectures)
from audit.models.registry import MODELS, create_model, list_models, register_model
from audit.models.training import TrainConfig, train

__all__ = ["MODELS", "TrainConfig", "create_model", "list_models", "register_model", "train"]
