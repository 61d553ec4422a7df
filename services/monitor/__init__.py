"""kubeloop monitor: KServe inference-log sink, shadow pairing, analysis figures, drift hooks.

Programmatic use (tests, ``kubeloop up``)::

    service = MonitorService(MonitorSettings(port=0, data_dir=path))
    await service.start()   # service.url
    ...
    await service.stop()
"""

from services.monitor.config import Limits, ModelConfig, MonitorSettings
from services.monitor.hooks import DriftEvaluator, DriftOutcome, WindowSnapshot
from services.monitor.service import MonitorService, run_forever

__all__ = [
    "DriftEvaluator",
    "DriftOutcome",
    "Limits",
    "ModelConfig",
    "MonitorService",
    "MonitorSettings",
    "WindowSnapshot",
    "run_forever",
]
