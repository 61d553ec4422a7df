"""The three kubeloop kinds, in the order their dependencies need (features → training → serving)."""

from operators.api.experiment import EXPERIMENT
from operators.api.featureview import FEATUREVIEW
from operators.api.mlmodel import MLMODEL

ALL_KINDS = (FEATUREVIEW, EXPERIMENT, MLMODEL)
KINDS_BY_NAME = {k.kind: k for k in ALL_KINDS}
