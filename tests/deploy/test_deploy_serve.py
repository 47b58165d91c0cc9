"""The prediction server, exercised through FastAPI's TestClient (no socket is opened)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest
from deploy_helpers import CLASS_NAMES, brightness_images
from fastapi.testclient import TestClient
from httpx import Response
from PIL import Image

from mlestar.deploy import LoadedBundle, create_app


def _encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _bright(size: int = 8) -> Image.Image:
    """A bright grayscale image: the model calls it 'bird' (class 2)."""
    return Image.fromarray(brightness_images(3, seed=5)[0][2], mode="L").resize((size, size))


def _post(client: TestClient, data: bytes) -> Response:
    return client.post("/predict", files={"file": ("upload.png", data, "image/png")})


@pytest.fixture(scope="module")
def client(loaded: LoadedBundle) -> Iterator[TestClient]:
    with TestClient(create_app(loaded)) as test_client:
        yield test_client


def _assert_good_prediction(response: Response, label: str | None = "bird") -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert list(body["probabilities"]) == CLASS_NAMES
    assert body["model_version"] == "1.2.3"
    assert body["confidence"] == body["probabilities"][body["label"]]
    if label is not None:
        assert body["label"] == label and body["index"] == CLASS_NAMES.index(label)


def test_health_names_model_and_version(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model": "small_cnn", "version": "1.2.3"}


@pytest.mark.parametrize("make", [
    pytest.param(lambda: _encode(_bright()), id="png-grayscale"),
    pytest.param(lambda: _encode(_bright(40).convert("RGB")), id="png-rgb-resized"),
    pytest.param(lambda: _encode(_bright().convert("RGB"), "JPEG"), id="jpeg"),
    pytest.param(lambda: _encode(_bright().convert("RGBA")), id="png-rgba"),
    pytest.param(lambda: _encode(_bright().convert("RGB").convert("P")), id="png-palette"),
    pytest.param(lambda: _encode(_bright().convert("LA")), id="png-grayscale-alpha"),
])
def test_predict_accepts_and_converts_every_common_image(client: TestClient, make: Callable[[], bytes]) -> None:
    _assert_good_prediction(_post(client, make()))


def test_predict_matches_the_bundle(client: TestClient, loaded: LoadedBundle) -> None:
    images = [Image.fromarray(a, mode="L") for a in brightness_images(6, seed=11)[0]]
    for image in images:
        body = _post(client, _encode(image)).json()
        (direct,) = loaded.predict([image])
        assert body["label"] == direct["label"]
        assert np.allclose(list(body["probabilities"].values()), list(direct["probabilities"].values()))
    labels = [_post(client, _encode(image)).json()["label"] for image in images]
    assert labels == ["cat", "dog", "bird", "cat", "dog", "bird"]


def _truncated_png() -> bytes:
    data = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)))
    return data[: len(data) // 2]


@pytest.mark.parametrize(("data", "status", "words"), [
    pytest.param(b"this is plain text, not an image", 415, "not a PNG or JPEG", id="not-an-image"),
    pytest.param(b"", 400, "empty", id="zero-bytes"),
    pytest.param(_truncated_png(), 400, "truncated or corrupt", id="truncated-png"),
    pytest.param(b"GIF89a" + b"\x00" * 64, 415, "not a PNG or JPEG", id="gif-refused"),
])
def test_bad_uploads_get_4xx_json_and_the_server_keeps_serving(client: TestClient, data: bytes, status: int,
                                                               words: str) -> None:
    response = _post(client, data)
    assert response.status_code == status
    assert words in response.json()["error"]
    _assert_good_prediction(_post(client, _encode(_bright())))


def test_missing_file_field_is_a_json_422(client: TestClient) -> None:
    response = client.post("/predict", files={"image": ("x.png", _encode(_bright()), "image/png")})
    assert response.status_code == 422
    assert "multipart field 'file'" in response.json()["error"]


def test_unknown_path_is_a_json_404(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404 and response.json() == {"error": "Not Found"}


def test_oversized_body_is_refused_before_reading(loaded: LoadedBundle) -> None:
    with TestClient(create_app(loaded, max_upload_bytes=1000)) as small:
        response = _post(small, b"\x89PNG" + b"\x00" * 200_000)  # Content-Length far over the limit
        assert response.status_code == 413
        assert "exceeds" in response.json()["error"]
        _assert_good_prediction(_post(small, _encode(_bright())))


def test_oversized_file_within_the_multipart_slack_is_refused(loaded: LoadedBundle) -> None:
    with TestClient(create_app(loaded, max_upload_bytes=1000)) as small:
        response = _post(small, b"\x89PNG" + b"\x00" * 2000)
        assert response.status_code == 413
        assert response.json() == {"error": "image file exceeds 1000 bytes"}


def test_oversized_chunked_body_is_cut_off_while_streaming(loaded: LoadedBundle) -> None:
    boundary = "mlestarboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
        yield head
        for _ in range(200):
            yield b"\x00" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    with TestClient(create_app(loaded, max_upload_bytes=1000)) as small:
        response = small.post("/predict", content=chunks(),
                              headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert response.status_code == 413
        assert "request body exceeds" in response.json()["error"]
        _assert_good_prediction(_post(small, _encode(_bright())))


def test_image_with_too_many_pixels_is_refused_before_decoding(loaded: LoadedBundle) -> None:
    with TestClient(create_app(loaded, max_pixels=1000)) as strict:
        response = _post(strict, _encode(_bright(40)))  # 1600 pixels
        assert response.status_code == 413
        assert "40x40" in response.json()["error"]
        _assert_good_prediction(_post(strict, _encode(_bright(30))))  # 900 pixels


def test_default_limit_refuses_a_small_file_that_decodes_to_49_megapixels(client: TestClient) -> None:
    bomb = _encode(Image.new("1", (7000, 7000)))  # a few kB of PNG, 49 MP once decoded
    assert len(bomb) < 100_000
    response = _post(client, bomb)
    assert response.status_code == 413
    assert "7000x7000" in response.json()["error"]


def test_openapi_documents_the_upload_and_the_responses(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    predict = spec["paths"]["/predict"]["post"]
    assert "multipart/form-data" in predict["requestBody"]["content"]
    ok_schema = predict["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok_schema["$ref"].endswith("/PredictionResponse")
    for status in ("400", "413", "415", "422"):
        assert predict["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorResponse")
    fields = spec["components"]["schemas"]["PredictionResponse"]["properties"]
    assert {"label", "index", "confidence", "probabilities", "top_k", "model_version"} <= set(fields)
    health = spec["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert health["$ref"].endswith("/HealthResponse")


def test_serve_loads_the_bundle_and_hands_the_app_to_uvicorn(bundle_dir: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from mlestar.deploy import serve

    calls: list[tuple[object, str, int]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port: calls.append((app, host, port)))
    serve(bundle_dir, host="127.0.0.1", port=8123, runtime="onnx")
    ((app, host, port),) = calls
    assert (host, port) == ("127.0.0.1", 8123)
    with TestClient(app) as served:
        _assert_good_prediction(_post(served, _encode(_bright())))
