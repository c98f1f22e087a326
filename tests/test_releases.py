"""Old streams and your own models (issue 20): the release table, decode-only weights of
earlier releases, NEUROCODEC_MODEL_PATH, and the model name a stream records."""

import json

import numpy as np
import pytest
import torch

import neurocodec
from neurocodec import UnknownModelError, zoo
from neurocodec.format import read_header
from neurocodec.zoo.weights import decoding_digest

GOLDEN = __import__("pathlib").Path(__file__).parent / "golden"


def test_every_shipped_model_is_in_the_current_release():
    """Changing a shipped weight file needs a release entry (and so a version) of its own."""
    current = [r for r in zoo.releases() if r["version"] == neurocodec.__version__]
    assert current, f"zoo/releases.json has no entry for version {neurocodec.__version__}"
    for info in zoo.list_models():
        entry = current[-1]["models"].get(info.name)
        assert entry is not None, f"{info.name} is shipped but not in release {neurocodec.__version__}"
        assert entry["hash"] == info.weight_hash.hex(), f"{info.name}'s weights changed: make a new release"
        assert entry["digest"] == decoding_digest(info.path)


def test_every_shipped_realism_decoder_is_in_the_current_release():
    """A realism decoder changes the pixels of every decode at R > 0: its file is released too."""
    from neurocodec.zoo.realism import realism_files
    from neurocodec.zoo.weights import read_metadata

    current = [r for r in zoo.releases() if r["version"] == neurocodec.__version__][-1]
    for path in realism_files():
        entry = current.get("realism", {}).get(path.stem)
        assert entry is not None, f"realism decoder {path.name} is shipped but not in release {neurocodec.__version__}"
        assert entry["hash"] == zoo.weight_hash(path).hex(), f"{path.name} changed: make a new release"
        assert entry["base_digest"] == read_metadata(path)["base_digest"]


def test_a_version_never_names_two_different_weight_sets_from_now_on():
    versions = [r["version"] for r in zoo.releases()]
    # 0.1.0 was used twice before this policy existed (both recorded); never again.
    assert len(set(versions[2:])) == len(versions[2:]) and "0.1.0" not in versions[2:]


def test_every_released_weight_hash_still_decodes():
    for release in zoo.releases():
        for name, entry in release["models"].items():
            info = zoo.find_model(name, bytes.fromhex(entry["hash"]))
            assert decoding_digest(info.path) == entry["digest"]
            first = next(r["version"] for r in zoo.releases() if r["models"].get(name, {}).get("hash") == entry["hash"])
            assert zoo.release_of(name, bytes.fromhex(entry["hash"])) == first


@pytest.mark.parametrize("weights", ["fa16d7ab", "68fd59e9"])
def test_streams_of_earlier_releases_decode_as_they_did(weights):
    data = (GOLDEN / f"release-0.1.0-{weights}.ncdc").read_bytes()
    assert read_header(data).weight_hash.hex().startswith(weights)
    pixels = neurocodec.decompress(data)
    expected = np.load(GOLDEN / f"release-0.1.0-{weights}.npy")
    # The float synthesis may round one level differently on another machine (DESIGN.md,
    # decision 2); the symbols, and so everything else, are exact.
    diff = np.abs(pixels.astype(int) - expected.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_decode_only_weights_never_encode_and_are_not_listed():
    assert all(not m.decode_only for m in zoo.list_models())
    assert any(m.decode_only for m in zoo.list_models(include_legacy=True))
    with pytest.raises(UnknownModelError):
        zoo.find_model("block-hyperprior-mse", bytes(8))


def test_unknown_hash_names_the_release_when_one_wrote_it(monkeypatch):
    monkeypatch.setattr(zoo, "LEGACY_DIR", GOLDEN / "no-such-folder")
    with pytest.raises(UnknownModelError, match="neurocodec 0.1.0 wrote this file"):
        zoo.find_model("block-hyperprior-mse", bytes.fromhex("fa16d7ab8bb3d620"))


@pytest.fixture()
def own_model(tmp_path, monkeypatch):
    from neurocodec.models import build_model
    from neurocodec.zoo import export_weights

    torch.manual_seed(0)
    model = build_model("block-hyperprior", refine_blocks=0, pixel_hidden=0, hyper_channels=8, hyper_hidden=16)
    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / "run-17.safetensors"
    export_weights(model, path, "my-model", "a test model",
                   card={"training_config": {"data": str(tmp_path / "photos"), "init_from": str(path)}})
    return path


def test_own_model_by_file_records_its_name_and_decodes_from_the_search_path(own_model, monkeypatch):
    image = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    codec = neurocodec.Codec(weights=str(own_model))
    data = codec.compress(image, quality=4)
    assert read_header(data).model_id == "my-model"  # the --name, not the file stem
    with pytest.raises(UnknownModelError, match="NEUROCODEC_MODEL_PATH"):
        neurocodec.decompress(data)
    monkeypatch.setenv(zoo.MODEL_PATH_ENV, str(own_model.parent))
    assert np.array_equal(neurocodec.decompress(data), codec.decompress(data))
    assert neurocodec.Codec("my-model").info.path == own_model.resolve()
    assert "my-model" in [m.name for m in zoo.list_models()]


def test_cards_carry_no_machine_local_paths(own_model):
    card = zoo.file_info(own_model).card
    assert card["training_config"] == {"data": "photos", "init_from": "run-17.safetensors"}
    for info in zoo.list_models(include_legacy=True):
        text = json.dumps(info.card)
        assert "/work/" not in text and "/home/" not in text and "/tmp/" not in text, info.path.name


_EXPORT_IN_A_FRESH_PROCESS = """
import sys, torch
from neurocodec.models import build_model
from neurocodec.zoo import export_weights
torch.manual_seed(0)
model = build_model("block-hyperprior", refine_blocks=1, refine_hidden=8, pixel_hidden=0, hyper_channels=8,
                    hyper_hidden=8)
print(export_weights(model, sys.argv[1], "same", "same model", card={"b": 1, "a": 2, "steps": 3}).hex())
"""


def test_the_same_model_exports_to_the_same_bytes_in_every_process(tmp_path):
    """safetensors writes its header in hash-map order, which changes per process; the export
    canonicalises it, so one model gets one weight hash (and streams one name for it)."""
    import subprocess
    import sys

    hashes, files = [], []
    for i in range(3):
        path = tmp_path / f"w{i}.safetensors"
        out = subprocess.run([sys.executable, "-c", _EXPORT_IN_A_FRESH_PROCESS, str(path)], capture_output=True,
                             text=True, check=True)
        hashes.append(out.stdout.strip())
        files.append(path.read_bytes())
    assert len(set(hashes)) == 1 and all(f == files[0] for f in files)


def test_canonical_header_keeps_every_tensor_and_metadata(tmp_path):
    from safetensors.numpy import load, save

    from neurocodec.zoo.weights import canonical_safetensors

    tensors = {"z": np.arange(5, dtype=np.float16), "a": np.ones((2, 3), np.int32), "m": np.zeros(0, np.float32)}
    metadata = {"zeta": "1", "alpha": "é ünïcode — card", "mid": "{\"k\": [1, 2]}"}
    data = save(tensors, metadata=metadata)
    canonical = canonical_safetensors(data)
    assert canonical_safetensors(canonical) == canonical
    length = int.from_bytes(canonical[:8], "little")
    assert length % 8 == 0
    header = json.loads(canonical[8:8 + length])
    assert list(header) == ["__metadata__", "a", "m", "z"] and list(header["__metadata__"]) == sorted(metadata)
    loaded = load(canonical)
    assert set(loaded) == set(tensors) and all(np.array_equal(loaded[k], v) for k, v in tensors.items())
    from safetensors import safe_open

    path = tmp_path / "canonical.safetensors"
    path.write_bytes(canonical)
    with safe_open(str(path), "numpy") as f:
        assert f.metadata() == metadata
