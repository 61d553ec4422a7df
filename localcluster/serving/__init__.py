"""Local stand-ins for KServe and Istio: predictor processes, their controller, and the router."""

from pathlib import Path

CRD_DIR = Path(__file__).parent / "crds"
"""CRD YAMLs (InferenceService, VirtualService) for the embedded control plane to install."""
