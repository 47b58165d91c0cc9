"""The image model card shows a curl request to /predict and the response the bundle really gave it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from mlestar.deploy.bundle import load_bundle, verify_bundle
from mlestar.utils.io import read_json


def _card_parts(card: str) -> tuple[str, dict]:
    section = card.split("## Example request", 1)[1].split("\n## ", 1)[0]
    curl = re.search(r"```bash\n(.*?)\n```", section, flags=re.S).group(1)
    response = json.loads(re.search(r"```json\n(.*?)\n```", section, flags=re.S).group(1))
    return curl, response


def test_the_card_shows_a_curl_line_and_a_response_that_names_a_class(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    bundle_dir = runs_dir / run_id / "07_deployment" / "bundle"
    curl, response = _card_parts((bundle_dir / "model_card.md").read_text(encoding="utf-8"))
    assert curl == 'curl -s -X POST -F "file=@example.png" http://127.0.0.1:8000/predict'
    labels = read_json(bundle_dir / "labels.json")
    assert response["label"] in labels and response["index"] == labels.index(response["label"])
    assert sum(response["probabilities"].values()) == pytest.approx(1.0)
    assert response["model_version"] == run_id and len(response["top_k"]) == 5
    assert "example.png" in verify_bundle(bundle_dir)  # shipped and checksummed like the rest


def test_the_card_response_is_what_the_served_bundle_answers_for_example_png(finished_run: tuple[Path, str]) -> None:
    runs_dir, run_id = finished_run
    bundle_dir = runs_dir / run_id / "07_deployment" / "bundle"
    _, response = _card_parts((bundle_dir / "model_card.md").read_text(encoding="utf-8"))
    bundle = load_bundle(bundle_dir)
    answer = bundle.predict([Image.open(bundle_dir / "example.png")], top_k=5)[0]
    assert answer["label"] == response["label"]
    assert answer["confidence"] == pytest.approx(response["confidence"], abs=1e-6)
    assert [t["label"] for t in answer["top_k"]] == [t["label"] for t in response["top_k"]]
