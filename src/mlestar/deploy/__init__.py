"""Stage 7 machinery: export with parity checks, inference bundles, the serving app.

``export`` turns a trained model into TorchScript/ONNX files and proves they
agree with PyTorch; ``bundle`` packs them with labels, preprocessing and a
checksummed manifest; ``serve`` answers HTTP requests from a loaded bundle.
"""

from mlestar.deploy.bundle import (
    LoadedBundle,
    load_bundle,
    preprocess_image,
    render_model_card,
    verify_bundle,
    write_bundle,
)
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
from mlestar.deploy.serve import create_app, decode_image, serve

__all__ = [
    "EXPORT_FILES",
    "LoadedBundle",
    "ParityReport",
    "check_parity",
    "create_app",
    "decode_image",
    "export_all",
    "export_onnx",
    "export_torchscript",
    "load_bundle",
    "load_onnx_runner",
    "load_torchscript_runner",
    "preprocess_image",
    "render_model_card",
    "serve",
    "verify_bundle",
    "write_bundle",
]
