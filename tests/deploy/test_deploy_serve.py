"""The prediction server, exercised through FastAPI's TestClient (no socket is opened).

Every prediction goes through the micro-batcher, so these tests cover the
batching path too. Bad inputs are checked three ways: the status and JSON
error, the error counter on /metrics, and a good request answered after.
"""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from deploy_helpers import CLASS_NAMES, bright, brightness_images, encode, header_only_png, metric, serving
from fastapi.testclient import TestClient
from httpx import Response
from PIL import Image

from mlestar.deploy import LoadedBundle, RequestFailed, ServeSettings, create_app, decode_image, openapi_document


def _post(client: TestClient, data: bytes, route: str = "/predict") -> Response:
    return client.post(route, files={"file": ("upload.png", data, "image/png")})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _parts(files: list[bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Multipart ``files`` fields, one per image."""
    return [("files", (f"{i}.png", data, "image/png")) for i, data in enumerate(files)]


@pytest.fixture(scope="module")
def client(loaded: LoadedBundle) -> Iterator[TestClient]:
    with serving(create_app(loaded)) as test_client:
        yield test_client


def _assert_good_prediction(response: Response, label: str | None = "bird") -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    _assert_good_answer(body, label)


def _assert_good_answer(body: dict[str, Any], label: str | None = "bird") -> None:
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert list(body["probabilities"]) == CLASS_NAMES
    assert body["model_version"] == "1.2.3"
    assert body["confidence"] == body["probabilities"][body["label"]]
    assert [entry["probability"] for entry in body["top_k"]] == sorted(body["probabilities"].values(), reverse=True)
    if label is not None:
        assert body["label"] == label and body["index"] == CLASS_NAMES.index(label)


def _errors(client: TestClient, kind: str) -> float:
    return metric(client.get("/metrics").text, "mlestar_errors_total", kind=kind)


# --------------------------------------------------------------------------- good requests


def test_health_names_model_version_runtime_and_readiness(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("status", "model", "version", "runtime", "precision", "ready")} == {
        "status": "ok", "model": "small_cnn", "version": "1.2.3", "runtime": "torchscript", "precision": "fp32",
        "ready": True}
    assert client.get("/ready").json() == {"ready": True}


@pytest.mark.parametrize("make", [
    pytest.param(lambda: encode(bright()), id="png-grayscale"),
    pytest.param(lambda: encode(bright(40).convert("RGB")), id="png-rgb-resized"),
    pytest.param(lambda: encode(bright(300)), id="png-large-decoded-in-a-thread"),
    pytest.param(lambda: encode(bright().convert("RGB"), "JPEG"), id="jpeg"),
    pytest.param(lambda: encode(bright().convert("RGBA")), id="png-rgba"),
    pytest.param(lambda: encode(bright().convert("RGB").convert("P")), id="png-palette"),
    pytest.param(lambda: encode(bright().convert("LA")), id="png-grayscale-alpha"),
])
def test_predict_accepts_and_converts_every_common_image(client: TestClient, make: Callable[[], bytes]) -> None:
    _assert_good_prediction(_post(client, make()))


def test_predict_matches_the_bundle(client: TestClient, loaded: LoadedBundle) -> None:
    images = [Image.fromarray(a, mode="L") for a in brightness_images(6, seed=11)[0]]
    for image in images:
        body = _post(client, encode(image)).json()
        (direct,) = loaded.predict([image])
        assert body["label"] == direct["label"]
        assert np.allclose(list(body["probabilities"].values()), list(direct["probabilities"].values()))
    labels = [_post(client, encode(image)).json()["label"] for image in images]
    assert labels == ["cat", "dog", "bird", "cat", "dog", "bird"]


def test_predict_takes_base64_json_and_a_data_url(client: TestClient) -> None:
    png = encode(bright())
    _assert_good_prediction(client.post("/predict", json={"image": _b64(png)}))
    _assert_good_prediction(client.post("/predict", json={"image": "data:image/png;base64," + _b64(png)}))


def test_batch_answers_each_image_in_order_from_files_and_json(client: TestClient) -> None:
    images = [encode(Image.fromarray(a, mode="L")) for a in brightness_images(5, seed=11)[0]]
    as_files = client.post("/predict/batch", files=_parts(images))
    as_json = client.post("/predict/batch", json={"images": [_b64(d) for d in images]})
    as_list = client.post("/predict/batch", json=[_b64(d) for d in images])
    for response in (as_files, as_json, as_list):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_version"] == "1.2.3"
        assert [p["label"] for p in body["predictions"]] == ["cat", "dog", "bird", "cat", "dog"]
        for answer in body["predictions"]:
            _assert_good_answer(answer, label=None)


def test_top_k_follows_the_setting(loaded: LoadedBundle) -> None:
    with serving(create_app(loaded, ServeSettings(top_k=2))) as small:
        body = _post(small, encode(bright())).json()
    assert [entry["label"] for entry in body["top_k"]][:1] == ["bird"] and len(body["top_k"]) == 2


# --------------------------------------------------------------------------- bad requests


def _truncated_png() -> bytes:
    data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)))
    return data[: len(data) // 2]


BAD_UPLOADS = [
    pytest.param(b"this is plain text, not an image", 415, "not_an_image", "not a PNG or JPEG", id="not-an-image"),
    pytest.param(b"", 400, "empty_file", "empty", id="zero-bytes"),
    pytest.param(_truncated_png(), 400, "corrupt_image", "truncated or corrupt", id="truncated-png"),
    pytest.param(b"GIF89a" + b"\x00" * 64, 415, "not_an_image", "not a PNG or JPEG", id="gif-refused"),
    pytest.param(header_only_png(10_000, 10_000), 413, "image_too_large", "10000x10000", id="10000x10000-bomb"),
]


# The app silences PIL's own bomb warning process-wide; pytest restores the filters per test.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(("data", "status", "kind", "words"), BAD_UPLOADS)
def test_bad_uploads_get_4xx_json_counted_and_the_server_keeps_serving(client: TestClient, data: bytes, status: int,
                                                                       kind: str, words: str) -> None:
    before = _errors(client, kind)
    response = _post(client, data)
    assert response.status_code == status
    assert words in response.json()["error"] and response.json()["kind"] == kind
    assert _errors(client, kind) == before + 1
    _assert_good_prediction(_post(client, encode(bright())))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(("data", "status", "kind", "words"), BAD_UPLOADS)
def test_bad_base64_uploads_are_refused_the_same_way(client: TestClient, data: bytes, status: int, kind: str,
                                                     words: str) -> None:
    response = client.post("/predict", json={"image": _b64(data)})
    assert response.status_code == status and response.json()["kind"] == kind and words in response.json()["error"]


@pytest.mark.parametrize(("send", "status", "kind", "words"), [
    pytest.param(dict(content=b'{"image": "abc', headers={"content-type": "application/json"}), 400,
                 "malformed_json", "malformed JSON", id="malformed-json"),
    pytest.param(dict(json={"image": "not*base64!"}), 400, "malformed_base64", "not valid base64",
                 id="malformed-base64"),
    pytest.param(dict(json={"picture": "AAAA"}), 422, "invalid_request", "image", id="json-without-image"),
    pytest.param(dict(json={"image": 42}), 422, "invalid_request", "string", id="json-image-not-a-string"),
    pytest.param(dict(content=b"hello", headers={"content-type": "text/plain"}), 415, "unsupported_media_type",
                 "'text/plain' is not accepted", id="wrong-content-type"),
    pytest.param(dict(content=encode(bright())), 415, "unsupported_media_type", "'(none)'",
                 id="no-content-type"),
    pytest.param(dict(files={"image": ("x.png", encode(bright()), "image/png")}), 422, "invalid_request",
                 "multipart field 'file'", id="multipart-without-file"),
    pytest.param(dict(files=[("file", ("a.png", encode(bright()), "image/png")),
                             ("file", ("b.png", encode(bright()), "image/png"))]), 422, "invalid_request",
                 "exactly one", id="two-files-to-predict"),
    pytest.param(dict(content=b"garbage", headers={"content-type": "multipart/form-data; boundary=x"}), 400,
                 "malformed_multipart", "Invalid multipart data", id="malformed-multipart"),
    pytest.param(dict(content=b"garbage", headers={"content-type": "multipart/form-data"}), 400,
                 "malformed_multipart", "Missing boundary", id="multipart-without-boundary"),
])
def test_malformed_requests_get_4xx_json_counted_and_the_server_keeps_serving(
        client: TestClient, send: dict[str, Any], status: int, kind: str, words: str) -> None:
    before = _errors(client, kind)
    response = client.post("/predict", **send)
    assert response.status_code == status, response.text
    assert words in response.json()["error"] and response.json()["kind"] == kind
    assert _errors(client, kind) == before + 1
    _assert_good_prediction(_post(client, encode(bright())))


def test_one_bad_image_refuses_the_batch_and_names_it(client: TestClient) -> None:
    files = [encode(bright()), encode(bright()), b""]
    response = client.post("/predict/batch", files=_parts(files))
    assert response.status_code == 400
    assert response.json() == {"error": "image 2: the uploaded file is empty (0 bytes)", "kind": "empty_file"}
    bad_b64 = client.post("/predict/batch", json={"images": [_b64(files[0]), "%%%"]})
    assert bad_b64.status_code == 400 and bad_b64.json()["error"].startswith("image 1: ")


def test_a_batch_over_the_image_limit_is_refused(loaded: LoadedBundle) -> None:
    with serving(create_app(loaded, ServeSettings(max_batch_images=3))) as small:
        response = small.post("/predict/batch", json=[_b64(encode(bright()))] * 4)
        assert response.status_code == 413 and response.json()["kind"] == "too_many_images"
        assert "4 images, more than the limit of 3" in response.json()["error"]
        assert small.post("/predict/batch", json=[_b64(encode(bright()))] * 3).status_code == 200
        assert small.post("/predict/batch", json=[]).status_code == 422


def test_unknown_route_and_wrong_method_are_json_and_counted(client: TestClient) -> None:
    before = _errors(client, "not_found")
    response = client.get("/nope")
    assert response.status_code == 404 and response.json() == {"error": "Not Found", "kind": "not_found"}
    assert _errors(client, "not_found") == before + 1
    wrong = client.get("/predict")
    assert wrong.status_code == 405 and wrong.json()["kind"] == "method_not_allowed"
    exposition = client.get("/metrics").text
    assert metric(exposition, "mlestar_requests_total", route="unmatched", status="404") >= 1
    assert metric(exposition, "mlestar_requests_total", route="/nope", status="404") == 0  # no label per URL


def test_oversized_body_is_refused_before_reading_and_counted(loaded: LoadedBundle) -> None:
    with serving(create_app(loaded, ServeSettings(max_upload_bytes=1000))) as small:
        response = _post(small, b"\x89PNG" + b"\x00" * 200_000)  # Content-Length far over the limit
        assert response.status_code == 413
        assert "exceeds" in response.json()["error"] and response.json()["kind"] == "body_too_large"
        assert _errors(small, "body_too_large") == 1
        exposition = small.get("/metrics").text  # refused before routing, still counted under its route
        assert metric(exposition, "mlestar_requests_total", route="/predict", status="413") == 1
        _assert_good_prediction(_post(small, encode(bright())))


def test_oversized_file_within_the_multipart_slack_is_refused(loaded: LoadedBundle) -> None:
    with serving(create_app(loaded, ServeSettings(max_upload_bytes=1000))) as small:
        response = _post(small, b"\x89PNG" + b"\x00" * 2000)
        assert response.status_code == 413
        assert response.json() == {"error": "image file exceeds 1000 bytes", "kind": "file_too_large"}


def test_oversized_chunked_body_is_cut_off_while_streaming(loaded: LoadedBundle) -> None:
    boundary = "mlestarboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()

    def chunks() -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
        yield head
        for _ in range(200):
            yield b"\x00" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    with serving(create_app(loaded, ServeSettings(max_upload_bytes=1000))) as small:
        response = small.post("/predict", content=chunks(),
                              headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert response.status_code == 413
        assert "request body exceeds" in response.json()["error"]
        assert _errors(small, "body_too_large") == 1
        _assert_good_prediction(_post(small, encode(bright())))


def test_image_with_too_many_pixels_is_refused_before_decoding(loaded: LoadedBundle) -> None:
    with serving(create_app(loaded, ServeSettings(max_pixels=1000))) as strict:
        response = _post(strict, encode(bright(40)))  # 1600 pixels
        assert response.status_code == 413
        assert "40x40" in response.json()["error"]
        _assert_good_prediction(_post(strict, encode(bright(30))))  # 900 pixels


def test_the_app_silences_pils_bomb_warning_and_refuses_the_image_itself(loaded: LoadedBundle) -> None:
    create_app(loaded)
    with warnings.catch_warnings(record=True) as seen:
        with pytest.raises(RequestFailed, match="10000x10000 pixels exceeds the limit"):
            decode_image(header_only_png(10_000, 10_000), max_pixels=40_000_000)
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]


def test_default_limit_refuses_a_small_file_that_decodes_to_49_megapixels(client: TestClient) -> None:
    bomb = encode(Image.new("1", (7000, 7000)))  # a few kB of PNG, 49 MP once decoded
    assert len(bomb) < 100_000
    response = _post(client, bomb)
    assert response.status_code == 413
    assert "7000x7000" in response.json()["error"]


# --------------------------------------------------------------------------- metrics


def test_metrics_count_requests_latency_batches_and_predictions(loaded: LoadedBundle) -> None:
    with serving(create_app(loaded)) as fresh:
        for _ in range(3):
            _assert_good_prediction(_post(fresh, encode(bright())))
        fresh.post("/predict/batch", json=[_b64(encode(bright()))] * 4)
        _post(fresh, b"")
        response = fresh.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "mlestar_requests_total", route="/predict", status="200") == 3
    assert metric(text, "mlestar_requests_total", route="/predict/batch", status="200") == 1
    assert metric(text, "mlestar_requests_total", route="/predict", status="400") == 1
    assert metric(text, "mlestar_request_latency_seconds_count", route="/predict") == 4
    assert metric(text, "mlestar_batch_size_count") == 4  # one model call per request here: they came one by one
    assert metric(text, "mlestar_batch_size_sum") == 7
    assert metric(text, "mlestar_predictions_total", label="bird") == 7
    assert metric(text, "mlestar_errors_total", kind="empty_file") == 1
    assert metric(text, "mlestar_errors_total", kind="overloaded") == 0  # every kind is exported from the start
    assert metric(text, "mlestar_ready") == 1
    assert metric(text, "mlestar_model_info", model="small_cnn", version="1.2.3", runtime="torchscript",
                  precision="fp32") == 1


def test_each_app_has_its_own_registry(loaded: LoadedBundle) -> None:
    with serving(create_app(loaded)) as first, serving(create_app(loaded)) as second:
        _post(first, encode(bright()))
        assert metric(first.get("/metrics").text, "mlestar_requests_total", route="/predict", status="200") == 1
        assert metric(second.get("/metrics").text, "mlestar_requests_total", route="/predict", status="200") == 0


# --------------------------------------------------------------------------- schema and serve()


def test_openapi_documents_both_bodies_and_every_response(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    predict = spec["paths"]["/predict"]["post"]
    assert {"multipart/form-data", "application/json"} <= set(predict["requestBody"]["content"])
    assert predict["requestBody"]["content"]["application/json"]["schema"]["required"] == ["image"]
    ok_schema = predict["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok_schema["$ref"].endswith("/PredictionResponse")
    for status in ("400", "413", "415", "422", "503"):
        assert predict["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorResponse")
    fields = spec["components"]["schemas"]["PredictionResponse"]["properties"]
    assert {"label", "index", "confidence", "probabilities", "top_k", "model_version"} <= set(fields)
    health = spec["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert health["$ref"].endswith("/HealthResponse")
    assert {"/predict", "/predict/batch", "/health", "/ready", "/metrics"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_openapi_document_without_a_model_equals_the_served_schema(client: TestClient) -> None:
    served = client.get("/openapi.json").json()
    assert json.loads(json.dumps(openapi_document("small_cnn", "1.2.3"))) == served


def test_settings_come_from_the_bundle_serving_metadata() -> None:
    serving = {"max_batch_size": 8, "max_wait": 0.002, "max_upload_size": 2048.0, "max_pixels": 99,
               "max_queue": 7, "max_batch_images": 5, "top_k": 2, "host": "0.0.0.0"}
    assert ServeSettings.from_serving(serving) == ServeSettings(
        max_upload_bytes=2048, max_pixels=99, max_batch_size=8, max_wait_ms=2.0, max_queue=7, max_batch_images=5,
        top_k=2)
    assert ServeSettings.from_serving(None) == ServeSettings()


def test_serve_loads_the_bundle_and_hands_the_app_to_uvicorn(bundle_dir: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from mlestar.deploy import serve

    calls: list[tuple[Any, str, int]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **_: calls.append((app, host, port)))
    serve(bundle_dir, host="127.0.0.1", port=8123, runtime="onnx", max_batch_size=4, max_wait_ms=1.5)
    ((app, host, port),) = calls
    assert (host, port) == ("127.0.0.1", 8123)
    server = app.state.server
    assert (server.settings.max_batch_size, server.settings.max_wait_ms) == (4, 1.5)
    with serving(app) as served:
        assert served.get("/health").json()["runtime"] == "onnx"
        _assert_good_prediction(_post(served, encode(bright())))
