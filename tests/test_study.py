"""The study library: grid, presets, spread, verdicts, report, MLflow record and read-back."""

import base64
import math
import re
from dataclasses import replace
from pathlib import Path

import pytest

from unmixlab.errors import UnmixlabError
from unmixlab.experiment import load_preset
from unmixlab.report import write_report
from unmixlab.study import (
    Baseline,
    Configuration,
    RunResult,
    Stat,
    StudyContext,
    StudySettings,
    expand,
    plan,
    summarize,
    verdicts,
)
from unmixlab.study.verdicts import compare
from unmixlab.tracking.study_runs import collect_results, record_study_run

SEED_TABLE = {  # name: (batch size, hidden size, samples per track, epochs, loss, time)
    "open-unmix": (8, 256, 16, 1, 9.536, "7:50"),
    "open-unmix2": (4, 256, 16, 1, 8.55, "7:43"),
    "open-unmix3": (16, 512, 16, 1, 11.2, "7:42"),
    "open-unmix4": (16, 512, 16, 4, 3.2, "31:09:00"),
    "open-unmix5": (32, 512, 32, 5, 2.26, "1:18:00"),
    "open-unmix6": (32, 512, 32, 1, 9.56, "20:00"),
}
SEPARATION = {  # name: the seed's museval SDR, SIR, ISR, SAR (dB)
    "open-unmix": (2.326, 3.028, 6.588, 5.347),
    "open-unmix2": (2.746, 2.954, 7.706, 6.288),
    "open-unmix3": (1.934, 2.849, 5.579, 4.07),
    "open-unmix4": (2.767, 3.052, 9.831, 7.201),
    "open-unmix5": (2.898, 3.628, 9.272, 6.63),
}


def variables(**values: object) -> dict[str, object]:
    base = {
        "epochs": 1,
        "nb_workers": 0,
        "batch_size": 8,
        "hidden_size": 256,
        "samples_per_track": 16,
        "unidirectional": False,
    }
    return base | values


def runs(
    name: str, losses: list[float], seconds: list[float], sdr: float | None = None, **values: object
) -> list[RunResult]:
    """One run per (loss, seconds) pair, seeds 0, 1, ... (one epoch each)."""
    return [
        RunResult(
            name,
            seed,
            f"run-{name}-{seed}",
            variables(**values),
            (loss * 1.2,),
            (loss,),
            (time,),
            sdr=None if sdr is None else sdr + 0.01 * seed,
        )
        for seed, (loss, time) in enumerate(zip(losses, seconds, strict=True))
    ]


# ---------------------------------------------------------------- grid and presets


def test_expand_keeps_explicit_configurations_then_the_grid():
    settings = StudySettings(
        configurations=(Configuration(name="a", batch_size=4),),
        grid={"hidden_size": [64, 128], "unidirectional": [False, True]},
    )
    names = [c.name for c in expand(settings)]
    assert names == ["a", "hs64-bi", "hs64-uni", "hs128-bi", "hs128-uni"]
    assert expand(settings)[2].overrides() == {"hidden_size": 64, "unidirectional": True}
    assert [c.name for c in expand(StudySettings())] == ["base"]


def test_bad_grids_are_refused():
    with pytest.raises(ValueError, match="repeat the name"):
        StudySettings(configurations=(Configuration(name="a"), Configuration(name="a")))
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        StudySettings(grid={"batch_size": [0, 4]})
    with pytest.raises(ValueError, match="grid"):
        StudySettings(grid={"lr": [0.1]})  # a control setting, not an independent variable


def test_seed_study_preset_is_the_seed_as_it_ran():
    config = load_preset("seed-study")
    configurations = {c.name: c for c in expand(config.study)}
    for name, (batch, hidden, samples, epochs, loss, time) in SEED_TABLE.items():
        c = configurations[name]
        assert (c.batch_size, c.hidden_size, c.samples_per_track, c.epochs) == (
            batch,
            hidden,
            samples,
            epochs,
        )
        ref = c.reference
        assert (ref.loss, ref.time) == (loss, time)
        assert (ref.sdr, ref.sir, ref.isr, ref.sar) == SEPARATION.get(name, (None,) * 4)
    train = config.train
    assert (train.data.sample_rate, train.model.bandwidth, train.run.nb_workers) == (
        44100,
        16000,
        4,
    )
    assert config.data.synth.sample_rate == 44100
    assert (train.run.patience, train.optim.lr_decay_patience, train.optim.lr_decay_gamma) == (
        140,
        80,
        0.3,
    )
    assert train.data.nb_channels == 2
    assert config.study.baselines == (
        Baseline(name="UMX (Original)", sdr=7.537, sir=12.091, isr=14.586, sar=8.679),
    )
    resampled = load_preset("seed-study-16k").train  # the other reading of "16kHz", by name
    assert (resampled.data.sample_rate, resampled.model.bandwidth) == (16000, 8000)


def test_quick_preset_keeps_the_seed_ratios():
    quick = expand(load_preset("seed-study-quick").study)
    full = expand(load_preset("seed-study").study)
    assert [q.name for q in quick][:7] == [f.name for f in full][:7]
    for q, f in zip(quick, full, strict=True):
        assert (q.batch_size, q.samples_per_track, q.epochs, q.unidirectional) == (
            f.batch_size,
            f.samples_per_track,
            f.epochs,
            f.unidirectional,
        )
        assert q.hidden_size * 8 == f.hidden_size


def test_the_seed_study_itself_tests_h2_and_h3(tmp_path: Path):
    runs = {p.configuration.name: p.config for p in plan(load_preset("seed-study"), tmp_path)}
    twin, base = runs["open-unmix-uni"], runs["open-unmix"]
    differing = {k for k, v in twin.flat().items() if base.flat()[k] != v}
    assert twin.model.unidirectional and differing == {"unidirectional", "output"}
    short = runs["open-unmix-uni-23ms"]  # the quality cost of 23.2 ms, streamed in 1-hop blocks
    differing = {k for k, v in short.flat().items() if base.flat()[k] != v}
    assert differing == {"unidirectional", "nfft", "nhop", "output"}
    sweep = [
        c
        for c in runs.values()
        if (c.optim.batch_size, c.optim.samples_per_track, c.run.epochs) == (16, 16, 1)
    ]
    assert sorted(c.model.hidden_size for c in sweep) == [128, 256, 384, 512, 768]


def test_plan_runs_every_configuration_with_every_seed(tmp_path: Path):
    config = load_preset("seed-study", ["study.seeds=2", "train.seed=7"])
    planned = plan(config, tmp_path)
    assert len(planned) == 24  # 12 configurations x 2 seeds
    assert [(p.configuration.name, p.seed) for p in planned[:3]] == [
        ("open-unmix", 7),
        ("open-unmix", 8),
        ("open-unmix2", 7),
    ]
    first = planned[0].config
    assert (first.optim.batch_size, first.model.hidden_size, first.optim.seed) == (8, 256, 7)
    assert first.run.output == tmp_path / "open-unmix" / "seed-7"
    assert first.run.patience == 140 and first.run.target == "vocals"


def test_plan_wants_one_target(tmp_path: Path):
    config = load_preset("seed-study", ["targets=[vocals, drums]"])
    with pytest.raises(UnmixlabError, match="one target"):
        plan(config, tmp_path)


def test_a_mistyped_study_key_is_an_error():
    with pytest.raises(UnmixlabError, match="study.sedes"):
        load_preset("seed-study", ["study.sedes=3"])


# ---------------------------------------------------------------- spread and verdicts


def test_differences_count_only_beyond_the_spread():
    a = summarize(runs("a", [10.0, 10.2, 9.8], [1, 1, 1]))[0]
    far = summarize(runs("b", [8.0, 8.1, 7.9], [1, 1, 1]))[0]
    near = summarize(runs("c", [9.9, 10.5, 9.6], [1, 1, 1]))[0]
    single = summarize(runs("d", [8.0], [1]))[0]
    assert compare(a, far, a.valid_loss, far.valid_loss, 0.05).direction == -1
    assert compare(a, near, a.valid_loss, near.valid_loss, 0.05).direction == 0
    assert compare(a, single, a.valid_loss, single.valid_loss, 0.05).direction is None
    assert Stat.of([1.0, 3.0]).format() == "2.000 ± 1.4"


def seed_like(loss_small: float, loss_large: float, seconds_large: float) -> list:
    results = runs("small", [loss_small, loss_small + 0.1, loss_small - 0.1], [10, 10.2, 9.8])
    results += runs(
        "large",
        [loss_large, loss_large + 0.1, loss_large - 0.1],
        [seconds_large, seconds_large * 1.02, seconds_large * 0.98],
        batch_size=16,
        hidden_size=512,
    )
    return summarize(results)


def test_h1_supported_when_larger_sizes_lower_the_loss_and_time_is_not_proportional():
    h1 = verdicts(seed_like(9.5, 6.0, 12.0), 0.05)[0]
    assert h1.outcome == "supported"
    assert "9.50→6.00" in h1.sentence and "×1.20 for size ×4" in h1.sentence


def test_h1_not_supported_when_the_loss_rises():
    h1 = verdicts(seed_like(9.5, 11.2, 12.0), 0.05)[0]
    assert h1.outcome == "not supported"
    assert "1 raised it" in h1.sentence


def test_h1_not_supported_when_time_scales_in_proportion():
    h1 = verdicts(seed_like(9.5, 6.0, 40.0), 0.05)[0]  # ×4 size, ×4 time
    assert h1.outcome == "not supported"


def test_h1_is_inconclusive_with_one_seed():
    results = runs("small", [9.5], [10]) + runs(
        "large", [6.0], [12], batch_size=16, hidden_size=512
    )
    h1 = verdicts(summarize(results), 0.05)[0]
    assert h1.outcome == "inconclusive"
    assert "--seeds 3" in h1.sentence


def test_the_seed_grid_does_not_test_h2_and_h3():
    results = []
    for name, (batch, hidden, samples, epochs, loss, _) in SEED_TABLE.items():
        results += runs(
            name,
            [loss, loss * 1.01],
            [60.0 * epochs, 61.0 * epochs],
            batch_size=batch,
            hidden_size=hidden,
            samples_per_track=samples,
            epochs=epochs,
        )
    h1, h2, h3 = verdicts(summarize(results), 0.05)
    assert h1.outcome == "not supported"  # the seed's own numbers: open-unmix3 is worse
    assert any("epochs ×4" in line for line in h1.evidence)
    assert h2.outcome == "not tested" and "open-unmix-uni" in h2.sentence
    assert h3.outcome == "not tested" and "hidden-size sweep" in h3.sentence
    assert "hidden size 256→512" in h3.sentence


def test_h2_weighs_the_real_time_factor_and_the_quality_of_the_twin():
    bi = runs("bi", [5.0, 5.1, 4.9], [10, 10, 10], sdr=3.0)
    uni = [
        RunResult(
            r.configuration.replace("bi", "uni"),
            r.seed,
            r.run_id + "u",
            variables(unidirectional=True),
            r.train_loss,
            r.valid_loss,
            r.train_seconds,
            sdr=r.sdr,
            rtf=0.2 + 0.01 * r.seed,
        )
        for r in bi
    ]
    bi = [
        RunResult(
            r.configuration,
            r.seed,
            r.run_id,
            r.variables,
            r.train_loss,
            r.valid_loss,
            r.train_seconds,
            sdr=r.sdr,
        )
        for r in bi
    ]
    h2 = verdicts(summarize(bi + uni), 0.05)[1]
    assert h2.outcome == "supported", h2.sentence
    assert "real-time factor of 0.210" in h2.sentence
    slow = [
        RunResult(
            r.configuration,
            r.seed,
            r.run_id,
            r.variables,
            r.train_loss,
            r.valid_loss,
            r.train_seconds,
            sdr=r.sdr,
            rtf=3.0 + 0.1 * r.seed,
        )
        for r in uni
    ]
    assert verdicts(summarize(bi + slow), 0.05)[1].outcome == "not supported"


def hidden_series(losses: dict[int, float]) -> list:
    results = []
    for hidden, loss in losses.items():
        results += runs(
            f"hs{hidden}", [loss, loss + 0.05, loss - 0.05], [1, 1, 1], hidden_size=hidden
        )
    return summarize(results)


def test_h3_supported_by_a_turning_point_and_refuted_by_a_monotone_curve():
    h3 = verdicts(hidden_series({128: 5.0, 256: 3.0, 512: 4.0}), 0.05)[2]
    assert h3.outcome == "supported", h3.sentence
    assert "lowest at hidden size 256" in h3.sentence
    h3 = verdicts(hidden_series({128: 5.0, 256: 4.0, 512: 3.0}), 0.05)[2]
    assert h3.outcome == "not supported", h3.sentence
    h3 = verdicts(hidden_series({128: 5.0, 256: 3.0, 512: 3.02}), 0.05)[2]
    assert h3.outcome == "inconclusive", h3.sentence


# ---------------------------------------------------------------- report


def context() -> StudyContext:
    return StudyContext(
        name="seed-study",
        description="five configurations",
        experiment="seed-study",
        study_run_id="abc",
        target="vocals",
        data_root="data/x",
        fixed={"patience": 140, "bandwidth": 8000.0},
        seeds=(0, 1, 2),
        significance=0.05,
        notes=("bandwidth capped at <Nyquist>",),
        command="unmixlab run study --preset seed-study",
        study_run_url="http://127.0.0.1:5000/#/experiments/1/runs/abc",
    )


def test_report_is_self_contained_and_complete(tmp_path: Path):
    summaries = seed_like(9.5, 6.0, 12.0)
    found = verdicts(summaries, 0.05)
    files = write_report(context(), summaries, found, tmp_path, name="study")
    page = files.html.read_text()
    for name in ("small", "large"):
        assert f"<td>{name}</td>" in page
    for verdict in found:
        assert f"<strong>{verdict.key}</strong>" in page
        assert verdict.sentence.split(".")[0] in page
    assert "&lt;Nyquist&gt;" in page  # escaped
    sources = re.findall(r'src="([^"]+)"', page)
    assert len(sources) == 3  # loss curves, loss against time, sizes (no SDR scored)
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<link" not in page and "<script" not in page  # nothing fetched from elsewhere

    text = files.markdown.read_text()
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(links) == 3
    assert all((tmp_path / link).is_file() for link in links)
    assert "| small |" in text and "### H1: supported" in text
    assert all(link.startswith("figures/") for link in links)  # not report/report/
    assert "[`abc`](http://127.0.0.1:5000/#/experiments/1/runs/abc)" in text
    assert '<a href="http://127.0.0.1:5000/#/experiments/1/runs/abc"><code>abc</code></a>' in page


def streamed(
    name: str, sdr: float, rtf: float, latency_ms: float, block_hops: int, **values: object
) -> list[RunResult]:
    """Three seeds of a causal configuration, scored and streamed."""
    scored = runs(name, [5.0] * 3, [10.0] * 3, sdr=sdr, unidirectional=True, **values)
    return [
        replace(r, rtf=rtf + 0.01 * r.seed, latency_ms=latency_ms, block_hops=block_hops)
        for r in scored
    ]


def test_a_low_latency_configuration_is_weighed_and_reported_in_the_real_time_section(
    tmp_path: Path,
):
    stft = {"nfft": 4096, "nhop": 1024}
    results = (
        runs("open-unmix", [5.0, 5.1, 4.9], [10, 10, 10], sdr=3.0, **stft)
        + streamed("open-unmix-uni", 2.9, 0.07, 116.1, 2, **stft)
        + streamed("uni-23ms", 2.0, 0.36, 23.2, 1, nfft=1024, nhop=256)
    )
    summaries = summarize(results)
    h2 = verdicts(summaries, 0.05)[1]
    # its bidirectional twin differs in direction and STFT; the longer causal window is evidence
    assert "uni-23ms streams at a real-time factor of 0.370" in h2.sentence
    assert "against open-unmix: SDR 3.01 → 2.01 dB (worse" in h2.sentence
    assert any(
        e.startswith("SDR (dB) of a shorter STFT open-unmix-uni→uni-23ms") for e in h2.evidence
    )
    assert h2.outcome == "not supported"  # 23 ms loses a dB beyond the spread

    files = write_report(context(), summaries, verdicts(summaries, 0.05), tmp_path, name="study")
    text = files.markdown.read_text()
    section = text.split("## Real time: latency, cost and quality", 1)[1].split("##", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| setting | STFT | block | latency (ms) | stream_rtf | CPU | SDR")
    assert (
        rows[1]
        == "| open-unmix-uni | 4096/1024 | 2 hop(s) | 116.1 | 0.0800 | — | 2.91 ± 0.010 | 3 | yes |"
    )
    assert (
        rows[2] == "| uni-23ms | 1024/256 | 1 hop(s) | 23.2 | 0.370 | — | 2.01 ± 0.010 | 3 | yes |"
    )
    assert rows[3].startswith("| open-unmix | 4096/1024 | whole song | offline | — | — | 3.01")
    assert (tmp_path / "figures" / "pareto.png").read_bytes().startswith(b"\x89PNG")
    assert "<h2>Real time: latency, cost and quality</h2>" in files.html.read_text()


# ---------------------------------------------------------------- MLflow and streaming


@pytest.mark.slow
def test_record_and_collect_read_back_a_tracked_training(tiny_config):
    from mlflow.tracking import MlflowClient

    from unmixlab.tracking.runs import train_tracked
    from unmixlab.tracking.setup import resolve_tracking_uri

    client = MlflowClient(resolve_tracking_uri())
    experiment_id = client.create_experiment("s")
    parent = client.create_run(experiment_id).info.run_id
    tracked = train_tracked(tiny_config, experiment="s", parent_run_id=parent)
    chunks = tiny_config.optim.samples_per_track * 3  # 4 train tracks, one kept for validation
    total = record_study_run(
        tracked.run_id, study="s", configuration="tiny", seed=0, chunks_per_epoch=chunks
    )
    (result,) = collect_results(experiment_id, parent, "vocals")
    assert (result.configuration, result.seed, result.run_id) == ("tiny", 0, tracked.run_id)
    assert result.variables["hidden_size"] == 16 and result.variables["unidirectional"] is False
    history = tracked.result.history
    assert list(result.valid_loss) == pytest.approx(history.valid_loss)
    assert list(result.train_loss) == pytest.approx(history.train_loss)
    assert len(result.train_seconds) == 2
    # the training pass excludes validation: shorter than the trainer's whole epoch
    for train_pass, epoch in zip(result.train_seconds, history.epoch_seconds, strict=True):
        assert 0 < train_pass < epoch
    assert total == pytest.approx(sum(result.train_seconds))
    assert client.get_run(tracked.run_id).data.tags["mlflow.runName"] == "tiny seed 0"
    assert result.samples_per_epoch == chunks
    assert result.ms_per_sample == pytest.approx(1000 * total / (chunks * 2))
    assert len(result.valid_sdr) == 2 and all(math.isfinite(v) for v in result.valid_sdr)
