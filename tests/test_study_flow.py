"""The study flow end to end: a reduced study (two configurations, one epoch, tiny data)."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from tiny import reduced_preset

from pipelines.cli import cli


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

    # the report: every configuration, the verdicts, the plots (embedded), the data
    page = report.read_text()
    names = ("small", "large", "centre", "wide", "centre-uni", "centre-uni-short")
    for name in names:
        assert f"<td>{name}</td>" in page
    for key in ("H1", "H1 time", "H2", "H3"):
        assert re.search(
            rf"<strong>{key}</strong><span class=\"badge\"[^>]*>(supported|contradicted|"
            r"inconclusive)</span>",
            page,
        )
    # learning curves, loss-time, sizes, SDR, loss against validation SDR, the Pareto front
    assert page.count('src="data:image/png;base64,') == 6
    # a folder given by path: the report names it as such (a preset's synth section: synthetic)
    assert "a MUSDB-format folder (wav)" in page
    assert "3 tracks" in page and "validation tracks" in page and "test tracks" in page
    assert "9.536" in page and "orientation only" in page  # the seed's number, apart
    assert "Replication of the seed" in page and "optimiser steps" in page
    assert "ms / sample (timing pass)" in page and "hardware" in page
    assert "missed / blocks" in page and "vocals, drums, bass, other" in page
    assert "oracle mask" in page and "Run order and clocks" in page
    markdown = report.with_suffix(".md").read_text()
    assert "### H1:" in markdown and "| centre |" in markdown
    realtime = markdown.split("## Real time", 1)[1].split("\n## ")[0]
    assert "| centre-uni | 512/128 | 2 hop(s) | 40.0 |" in realtime  # (512 + 128) / 16 kHz
    assert "| centre-uni-short | 256/64 | 1 hop(s) | 16.0 |" in realtime
    assert "| centre | 512/128 | whole song | offline |" in realtime

    # MLflow: one run per configuration, tagged, with its loss history, time and SDR
    client = MlflowClient(resolve_tracking_uri())
    experiment = client.get_experiment_by_name("study-test")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    assert sorted(r.data.tags["configuration"] for r in children) == sorted(names)
    epochs = {"small": 1, "large": 1}  # the replication's; the design's budget gives two
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["study"] == "reduced" and run.data.tags["seed"] == "0"
        steps = list(range(1, epochs.get(run.data.tags["configuration"], 2) + 1))
        for key in ("train_loss", "valid_loss", "train_seconds"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == steps
        assert run.data.metrics["total_train_seconds"] > 0
        assert "test_sdr_vocals" in run.data.metrics
        assert run.info.run_name == f"{run.data.tags['configuration']} seed 0"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.html", "report/report.md", "report/figures"} <= artifacts
    pngs = client.list_artifacts(parent.info.run_id, "report/figures")
    assert len(pngs) == 6
    assert parent.info.status == "FINISHED"
    for key in ("H1", "H1_time", "H2", "H3"):
        assert parent.data.tags[f"verdict.{key}"] in ("supported", "contradicted", "inconclusive")
    (twin,) = [r for r in children if r.data.tags["configuration"] == "centre-uni"]
    assert 0 < twin.data.metrics["stream_rtf"] and twin.data.metrics["latency_ms"] > 0
    (short,) = [r for r in children if r.data.tags["configuration"] == "centre-uni-short"]
    assert short.data.tags["realtime_block_hops"] == "1" and short.data.params["nfft"] == "256"

    # Prefect: the verdicts and the table as a markdown artifact of the flow run
    with get_client(sync_client=True) as prefect:
        (artifact,) = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["study-reduced"]))
        )[-1:]
    assert artifact.type == "markdown"
    assert "### H1:" in artifact.data and "| small |" in artifact.data
