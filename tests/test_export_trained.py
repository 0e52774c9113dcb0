"""``unmixlab export onnx`` works for every causal model ``unmixlab train`` makes: bandwidth
cropped or not (the Nyquist frequency), one target or four; ``stream --engine onnx`` runs it."""

import stat
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from test_unlucky_user import TINY, run

pytest.importorskip("onnxruntime")

# name -> {target: bandwidth in Hz}; at 16 kHz, 8000 Hz is the Nyquist frequency: no bin cropped
FOLDERS = {
    "one-uncropped": {"vocals": 8000},
    "one-cropped": {"vocals": 6000},
    "four-mixed": {"vocals": 8000, "drums": 6000, "bass": 8000, "other": 3000},
}


@pytest.fixture(scope="module")
def trained(synth_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The model folders of :data:`FOLDERS`, each target trained by ``unmixlab train``."""
    folders = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        root = tmp_path_factory.mktemp("trained")
        monkeypatch.chdir(root)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        monkeypatch.setenv("UNMIXLAB_ARTIFACTS", str(root / "mlartifacts"))
        capsys = _NoCapture()
        for name, bandwidths in FOLDERS.items():
            folder = root / name
            for target, bandwidth in bandwidths.items():
                flags = [*TINY, "--bandwidth", str(bandwidth), "--unidirectional"]
                args = ["train", "--root", synth_root, *flags, "--target", target]
                status, _, err = run(monkeypatch, capsys, *args, "--output", folder)
                assert status == 0, err
            folders[name] = folder
    return folders


class _NoCapture:
    """What ``run`` reads its output from, for a module fixture (output is not asserted)."""

    def readouterr(self) -> SimpleNamespace:
        return SimpleNamespace(out="", err="")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_trained_models_export_and_stream_in_onnxruntime(
    name: str, trained: dict[str, Path], synth_root: Path, tmp_path: Path, monkeypatch, capsys
):
    folder = trained[name]
    onnx = tmp_path / "step.onnx"
    status, out, err = run(monkeypatch, capsys, "export", "onnx", folder, onnx)
    assert status == 0, err
    assert "onnxruntime matches the PyTorch streaming separator" in out
    assert stat.S_IMODE(onnx.stat().st_mode) == stat.S_IMODE(tmp_path.stat().st_mode) & 0o666

    song = next((synth_root / "test").iterdir()) / "mixture.wav"
    stems = {}
    for engine in ("onnx", "torch"):
        args = ["stream", song, "--model", folder, "--out", tmp_path / engine]
        args += (
            ["--engine", engine, "--onnx", onnx] if engine == "onnx" else ["--precision", "float32"]
        )
        status, _, err = run(monkeypatch, capsys, *args)
        assert status == 0, err
        stems[engine] = {p.name: sf.read(p)[0] for p in (tmp_path / engine).rglob("*.wav")}
    assert sorted(stems["onnx"]) == sorted(f"{t}.wav" for t in FOLDERS[name])
    for stem, audio in stems["onnx"].items():
        assert np.abs(audio - stems["torch"][stem]).max() <= 1e-4 + 2 / 32768  # 16-bit files
