"""Stage 7 machinery: export with parity checks, int8 copies, inference bundles, the serving app.

``export`` turns a trained model into TorchScript/ONNX files and proves they
agree with PyTorch; ``quantize`` makes int8 copies and measures what they
cost in accuracy; ``benchmark`` times a runtime; ``bundle`` packs everything
with labels, preprocessing and a checksummed manifest; ``serve`` answers HTTP
requests from a loaded bundle, through ``batching`` (micro-batches),
``inputs`` (request parsing and limits), ``monitor`` (drift) and ``metrics``
(Prometheus).

The preprocessing functions exported here are those of
:mod:`mlestar.data.preprocess`: serving runs the code training ran, not a copy.
"""

from mlestar.data.preprocess import image_pixels, normalize_pixels, preprocess_bytes, preprocess_image
from mlestar.deploy.batching import MicroBatcher, NotRunning, Overloaded
from mlestar.deploy.bundle import LoadedBundle, load_bundle, render_model_card, verify_bundle, write_bundle
from mlestar.deploy.export import (
    EXPORT_FILES,
    ParityReport,
    check_parity,
    export_all,
    export_onnx,
    export_torchscript,
    load_onnx_runner,
    load_torchscript_runner,
)
from mlestar.deploy.inputs import RequestFailed, decode_image
from mlestar.deploy.monitor import DriftMonitor, DriftReference, reference_from_analysis
from mlestar.deploy.quantize import QUANTIZED_FILES, QuantizationReport, quantize_and_compare
from mlestar.deploy.serve import ServeSettings, create_app, openapi_document, serve

__all__ = [
    "EXPORT_FILES",
    "QUANTIZED_FILES",
    "DriftMonitor",
    "DriftReference",
    "LoadedBundle",
    "MicroBatcher",
    "NotRunning",
    "Overloaded",
    "ParityReport",
    "QuantizationReport",
    "RequestFailed",
    "ServeSettings",
    "check_parity",
    "create_app",
    "decode_image",
    "export_all",
    "export_onnx",
    "export_torchscript",
    "image_pixels",
    "load_bundle",
    "load_onnx_runner",
    "load_torchscript_runner",
    "normalize_pixels",
    "openapi_document",
    "preprocess_bytes",
    "preprocess_image",
    "quantize_and_compare",
    "reference_from_analysis",
    "render_model_card",
    "serve",
    "verify_bundle",
    "write_bundle",
]
