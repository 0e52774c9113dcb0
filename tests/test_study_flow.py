"""The study flow end to end: a reduced study (two configurations, one epoch, tiny data)."""

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipelines.cli import cli


def reduced_preset(folder: Path, root: Path) -> Path:
    """Two configurations of the seed's design (and a unidirectional twin), one epoch, tiny data."""
    preset = {
        "description": "reduced seed study for the tests",
        "experiment": "study-test",
        "targets": ["vocals"],
        "output": str(folder / "runs"),
        "data": {"root": str(root), "is_wav": True, "cache_dir": str(folder / "cache")},
        "train": {
            "sample_rate": 16000,
            "bandwidth": 8000,
            "nfft": 512,
            "nhop": 128,
            "seq_dur": 1.0,
            "seed": 0,
        },
        "evaluate": {"workers": 1},
        "promote": {"enabled": False},
        "study": {
            "configurations": [
                {
                    "name": "small",
                    "batch_size": 4,
                    "hidden_size": 16,
                    "samples_per_track": 4,
                    "epochs": 1,
                    "reference": {"loss": 9.536, "time": "7:50"},
                },
                {
                    "name": "large",
                    "batch_size": 8,
                    "hidden_size": 32,
                    "samples_per_track": 4,
                    "epochs": 1,
                    "reference": {"loss": 11.2, "time": "7:42"},
                },
                {  # its unidirectional twin: streamed for the real-time factor (H2)
                    "name": "large-uni",
                    "batch_size": 8,
                    "hidden_size": 32,
                    "samples_per_track": 4,
                    "epochs": 1,
                    "unidirectional": True,
                },
                {  # a shorter window in 1-hop blocks: the quality cost of latency (H2)
                    "name": "large-uni-short",
                    "batch_size": 8,
                    "hidden_size": 32,
                    "samples_per_track": 4,
                    "epochs": 1,
                    "unidirectional": True,
                    "nfft": 256,
                    "nhop": 64,
                    "block_hops": 1,
                },
            ],
        },
    }
    path = folder / "reduced.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path


@pytest.mark.slow
def test_reduced_study_reports_every_configuration_and_tracks_every_run(
    synth_root: Path, tmp_path: Path, prefect_harness: None
):
    from mlflow.tracking import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from unmixlab.tracking.setup import resolve_tracking_uri

    preset = reduced_preset(tmp_path, synth_root)
    result = CliRunner().invoke(cli, ["run", "study", "--preset", str(preset)])
    assert result.exit_code == 0, result.output
    report = Path(re.search(r"report:\s+(\S+\.html)", result.output).group(1))

    # the report: every configuration, the three verdicts, the plots (embedded)
    page = report.read_text()
    for name in ("small", "large", "large-uni", "large-uni-short"):
        assert f"<td>{name}</td>" in page
    for key in ("H1", "H2", "H3"):
        assert re.search(
            rf"<strong>{key}</strong><span class=\"badge\"[^>]*>(supported|not supported|"
            r"inconclusive|not tested)</span>",
            page,
        )
    # curves, loss-time, sizes, SDR, loss against validation SDR, the real-time Pareto front
    assert page.count('src="data:image/png;base64,') == 6
    assert "9.536" in page  # the seed's number next to the measurement
    assert "Separation quality beside the seed's" in page and "SIR (dB)" in page
    assert "ms / sample" in page and "hardware" in page
    markdown = report.with_suffix(".md").read_text()
    assert "### H1:" in markdown and "| large |" in markdown
    realtime = markdown.split("## Real time: latency, cost and quality", 1)[1].split("\n## ")[0]
    assert "| large-uni | 512/128 | 2 hop(s) | 40.0 |" in realtime  # (512 + 128) / 16 kHz
    assert "| large-uni-short | 256/64 | 1 hop(s) | 16.0 |" in realtime
    assert "| large | 512/128 | whole song | offline |" in realtime

    # MLflow: one run per configuration, tagged, with its loss history, time and SDR
    client = MlflowClient(resolve_tracking_uri())
    experiment = client.get_experiment_by_name("study-test")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert sorted(r.data.tags["configuration"] for r in children) == [
        "large",
        "large-uni",
        "large-uni-short",
        "small",
    ]
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["study"] == "reduced" and run.data.tags["seed"] == "0"
        for key in ("train_loss", "valid_loss", "train_seconds"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1]
        assert run.data.metrics["total_train_seconds"] > 0
        assert "test_sdr_vocals" in run.data.metrics
        assert run.info.run_name == f"{run.data.tags['configuration']} seed 0"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/figures"} <= artifacts
    pngs = client.list_artifacts(parent.info.run_id, "report/figures")
    assert len(pngs) == 6
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["verdict.H1"] != "not tested"  # small -> large: both sizes grow
    assert parent.data.tags["verdict.H2"] != "not tested"  # large -> large-uni
    (twin,) = [r for r in children if r.data.tags["configuration"] == "large-uni"]
    assert 0 < twin.data.metrics["stream_rtf"] and twin.data.metrics["latency_ms"] > 0
    (short,) = [r for r in children if r.data.tags["configuration"] == "large-uni-short"]
    assert short.data.tags["realtime_block_hops"] == "1" and short.data.params["nfft"] == "256"
    assert "real-time factor" in page

    # Prefect: the verdicts and the table as a markdown artifact of the flow run
    with get_client(sync_client=True) as prefect:
        (artifact,) = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["study-reduced"]))
        )[-1:]
    assert artifact.type == "markdown"
    assert "### H1:" in artifact.data and "| small |" in artifact.data
