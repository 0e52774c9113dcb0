"""The study library: grid, presets, spread, verdicts, report, MLflow record and read-back."""

import base64
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from unmixlab.errors import UnmixlabError
from unmixlab.experiment import load_preset
from unmixlab.model import parameter_count
from unmixlab.study import (
    Baseline,
    Configuration,
    RunResult,
    StudyContext,
    StudySettings,
    expand,
    interleave,
    plan,
    summarize,
)
from unmixlab.study.conduct import power_of
from unmixlab.study.design import resolved
from unmixlab.study.measurements import CostMeasurement, Measurements, PacedStream, RunClock
from unmixlab.study.report import write_report
from unmixlab.study.verdicts import verdicts
from unmixlab.tracking.study_runs import collect_results, record_study_run, study_records

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
    with pytest.raises(ValueError, match="budget configuration"):
        StudySettings(configurations=(Configuration(name="a", epochs=3),))  # the budget sets them


def test_seed_study_preset_is_the_seed_as_it_ran():
    config = load_preset("seed-study")
    configurations = {c.name: c for c in expand(config.study)}
    for name, (batch, hidden, samples, epochs, loss, time) in SEED_TABLE.items():
        c = configurations[name]
        assert c.protocol == "seed"
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


def test_quick_and_cpu_presets_are_the_full_design_scaled_down():
    full = expand(load_preset("seed-study").study)
    for preset in ("seed-study-quick", "seed-study-cpu"):
        small = expand(load_preset(preset).study)
        assert [q.name for q in small] == [f.name for f in full]
        for q, f in zip(small, full, strict=True):
            assert (q.protocol, q.batch_size, q.samples_per_track, q.epochs, q.unidirectional) == (
                f.protocol,
                f.batch_size,
                f.samples_per_track,
                f.epochs,
                f.unidirectional,
            )
            if q.name != "centre-uni-matched":
                assert q.hidden_size * 8 == f.hidden_size


@pytest.mark.parametrize("preset", ["seed-study-quick", "seed-study-cpu", "seed-study"])
def test_the_design_answers_h1_h2_and_h3(preset: str, tmp_path: Path):
    config = load_preset(preset)
    analysis = config.study.analysis
    assert (analysis.min_test_tracks, analysis.min_valid_tracks) == (4, 4)
    assert config.train.data.valid_count >= 4 and config.data.synth.test_tracks >= 4
    design = [
        resolved(config, c)
        for c in expand(config.study)
        if c.protocol == "budget" and not c.unidirectional and not c.nfft
    ]
    assert len({v["hidden_size"] for v in design}) >= 4  # a quadratic with a spread (H3)
    assert len({v["batch_size"] for v in design}) >= 3
    assert len({v["samples_per_track"] for v in design}) >= 3
    # H2's twin is parameter-matched: within 3 % of the bidirectional model's weights
    runs = {p.configuration.name: p.config for p in plan(config, tmp_path, train_tracks=4)}
    bi, uni = (runs[name].architecture() for name in analysis.h2_pair)
    assert uni.unidirectional and not bi.unidirectional
    assert abs(parameter_count(uni) / parameter_count(bi) - 1) < 0.03
    # the seed count is what the power analysis asks for (quick: knowingly fewer)
    power = power_of(config)
    assert (power.seeds >= power.seeds_needed) == (preset != "seed-study-quick")


def test_budget_configurations_see_the_same_training_samples(tmp_path: Path):
    config = load_preset("seed-study-quick")
    planned = {p.configuration.name: p for p in plan(config, tmp_path, train_tracks=4)}
    samples = config.study.budget.samples
    for name in ("centre", "batch4", "batch64", "spt8", "spt64", "hidden-x4", "centre-uni"):
        budget = planned[name].budget(4)
        assert (
            samples <= budget.samples < samples + 4 * planned[name].config.optim.samples_per_track
        )
    assert planned["batch4"].budget(4).steps == 16 * planned["batch64"].budget(4).steps
    seed = planned["open-unmix4"].budget(4)  # the replication keeps the seed's epochs
    assert (seed.epochs, seed.samples, seed.steps) == (4, 4 * 16 * 4, 4 * 4)  # batch 16


def test_plan_runs_every_configuration_with_every_seed(tmp_path: Path):
    config = load_preset("seed-study", ["study.seeds=2", "train.seed=7"])
    planned = plan(config, tmp_path)
    assert len(planned) == 34  # 17 configurations x 2 seeds
    assert [(p.configuration.name, p.seed) for p in planned[:3]] == [
        ("open-unmix", 7),
        ("open-unmix", 8),
        ("open-unmix2", 7),
    ]
    first = planned[0].config
    assert (first.optim.batch_size, first.model.hidden_size, first.optim.seed) == (8, 256, 7)
    assert first.run.output == tmp_path / "open-unmix" / "seed-7"
    assert first.run.patience == 140 and first.run.target == "vocals"
    order = interleave(planned, 0)
    assert sorted(order, key=planned.index) == planned  # a permutation
    assert order == interleave(planned, 0) and order != interleave(planned, 1)
    firsts = [p.configuration.name for p in order[: len(order) // 2]]
    assert len(set(firsts)) > 8  # interleaved, not configuration by configuration


def test_plan_wants_one_target(tmp_path: Path):
    config = load_preset("seed-study", ["targets=[vocals, drums]"])
    with pytest.raises(UnmixlabError, match="one target"):
        plan(config, tmp_path)


def test_a_mistyped_study_key_is_an_error():
    with pytest.raises(UnmixlabError, match="study.sedes"):
        load_preset("seed-study", ["study.sedes=3"])


# ---------------------------------------------------------------- verdicts and report

QUICK = load_preset("seed-study-quick")
TARGETS4 = ("vocals", "drums", "bass", "other")


def simulated(
    batch: float = 0.0,
    hidden: float = 0.0,
    curve: float = 0.0,
    uni: float = 0.0,
    cost_batch: float = 0.0,
    seeds: int = 4,
    missed: int = 0,
) -> tuple[list, Measurements]:
    """Summaries of the quick preset's configurations with known effects on test SDR (dB).

    SDR = batch x log2 batch + hidden x h + curve x h^2 + uni (unidirectional) + noise, with
    h = log2(hidden / 32); the timing pass's cost departs from the cost model by
    2^(cost_batch x log2 batch).
    """
    rng = np.random.default_rng(0)
    results, costs = [], {}
    for c in expand(QUICK.study):
        v = {"epochs": c.epochs or 8, "nb_workers": 0, **resolved(QUICK, c)}
        h = math.log2(v["hidden_size"] / 32)
        mean = batch * math.log2(v["batch_size"]) + hidden * h + curve * h * h
        mean += uni * v["unidirectional"]
        for seed in range(seeds):
            sdr = mean + rng.normal(0, 0.1)
            results.append(
                RunResult(
                    c.name,
                    seed,
                    f"{c.name}-{seed}",
                    v,
                    (3.0, 2.0),
                    (3.1, 2.5),
                    (1.0, 1.0),
                    sdr=sdr,
                    samples_per_epoch=64,
                )  # fmt: skip
            )
        work = 1000.0 * v["hidden_size"]
        cost = work * 2 ** (cost_batch * math.log2(v["batch_size"]) + rng.normal(0, 0.02))
        costs[c.name] = CostMeasurement(c.name, cost, cost, cost, cost, 3, 2, 1000, work, (1, 1))
    stream = PacedStream("centre-uni-matched", TARGETS4, "float32", "CPU", 1, 5.8, 11.6, 1.0,
                         2.0, 3.0, 100, missed, 0.05)  # fmt: skip
    measurements = Measurements(costs=costs, streams={stream.configuration: stream})
    return summarize(results, expand(QUICK.study)), measurements


def decide(**effects: float) -> dict[str, object]:
    summaries, measurements = simulated(**effects)
    return {v.key: v for v in verdicts(summaries, QUICK.study, measurements, (512, 128))}


def test_h1_follows_the_slopes_of_one_model_over_the_design():
    assert decide(batch=0.5, hidden=0.5)["H1"].outcome == "supported"
    assert decide(batch=0.5, hidden=-0.5)["H1"].outcome == "contradicted"
    flat = decide()["H1"]
    assert flat.outcome == "inconclusive"  # no difference is never a verdict
    assert "per doubling of batch size (95 % CI [" in flat.sentence and "α = 0.05" in flat.sentence
    header, rows = flat.tables[1]  # the pairwise table: Holm-adjusted, with effect sizes
    assert header == ["comparison", "Δ SDR (dB)", "95 % CI", "Hedges' g", "p", "Holm p"]
    assert all(float(r[5]) >= float(r[4]) for r in rows)


def test_h1_time_judges_the_cost_model_against_its_margin():
    assert decide(cost_batch=0.0)["H1 time"].outcome == "contradicted"  # the model holds
    departs = decide(cost_batch=-1.0)["H1 time"]
    assert departs.outcome == "supported" and "×0.50 per doubling of batch" in departs.sentence


def test_h2_needs_non_inferiority_and_no_missed_deadline():
    assert decide(uni=0.0)["H2"].outcome == "supported"
    assert decide(uni=-1.5)["H2"].outcome == "contradicted"  # beyond the 0.5 dB margin
    missed = simulated(uni=0.0, missed=1)
    h2 = verdicts(*missed[:1], QUICK.study, missed[1], (512, 128))[2]
    assert h2.outcome == "contradicted" and "missed 1 of 100 deadlines" in h2.sentence
    assert "against a margin of −0.5 dB" in h2.sentence


def test_h3_wants_a_turning_point_inside_the_tested_sizes():
    peak = decide(curve=-0.5)["H3"]
    assert peak.outcome == "supported", peak.sentence
    size = float(re.search(r"turning point lies at hidden size ([\d.]+)", peak.sentence)[1])
    assert 28 < size < 36  # the simulated peak is at 32
    assert decide(curve=0.5)["H3"].outcome == "contradicted"  # a valley
    monotone = decide(hidden=0.5)["H3"]
    assert monotone.outcome == "inconclusive"  # no curvature
    assert "vertex is undefined" in monotone.sentence
    assert "turning point lies" not in monotone.sentence


def context(**changes: object) -> StudyContext:
    values = dict(
        name="seed-study-quick",
        description="the design",
        experiment="seed-study",
        study_run_id="abc",
        target="vocals",
        data_root="data/x",
        fixed={"patience": 140, "lr": 0.001},
        seeds=(0, 1, 2, 3),
        analysis=QUICK.study.analysis,
        budget=QUICK.study.budget,
        stft=(512, 128),
        notes=("bandwidth capped at <Nyquist>",),
        command="unmixlab run study --preset seed-study-quick",
        study_run_url="http://127.0.0.1:5000/#/experiments/1/runs/abc",
        data=(("data", "synthetic: made by unmixlab.synth, seed 0"),),
        baselines=QUICK.study.baselines,
        power=power_of(QUICK),
        protocols=tuple((c.name, c.protocol) for c in expand(QUICK.study)),
    )
    return StudyContext(**(values | changes))


@pytest.mark.slow
def test_report_is_self_contained_honest_and_complete(tmp_path: Path):
    summaries, measurements = simulated(batch=0.5, hidden=0.5, curve=-0.5)
    summaries = [
        replace(s, reference=c.reference)
        for s, c in zip(summaries, expand(QUICK.study), strict=True)
    ]
    found = verdicts(summaries, QUICK.study, measurements, (512, 128))
    files = write_report(
        context(measurements=measurements), summaries, found, tmp_path, name="study"
    )
    page = files.html.read_text()
    for verdict in found:
        assert f"<strong>{verdict.key}</strong>" in page
        assert verdict.outcome in ("supported", "contradicted", "inconclusive")
    assert "synthetic" in page and "&lt;Nyquist&gt;" in page  # escaped
    assert "Analysis plan (fixed in the preset before the runs)" in page
    assert "<h2>Replication of the seed's protocol</h2>" in page
    assert "Orientation only: different data (7-s MUSDB18 previews), different hardware" in page
    assert "published" not in page.replace("not a published figure", "")
    sources = re.findall(r'src="([^"]+)"', page)
    assert len(sources) == 4  # learning curves, loss against time, sizes, SDR
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<link" not in page and "<script" not in page  # nothing fetched from elsewhere

    text = files.markdown.read_text()
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(links) == 4 and all((tmp_path / link).is_file() for link in links)
    assert all(link.startswith("figures/") for link in links)  # not report/report/
    assert "[`abc`](http://127.0.0.1:5000/#/experiments/1/runs/abc)" in text
    assert f"### H1: {found[0].outcome}" in text and "| centre |" in text
    assert "the smallest effects detected with 80% power" in text
    assert "need 6 seeds: this study is underpowered" in text
    assert "| centre-uni-matched | vocals, drums, bass, other | float32 |" in text


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
    clock = RunClock("tiny", 0, 3, 12.5, 11.0, (0.5, 0.75))
    total = record_study_run(
        tracked.run_id,
        study="s",
        key="k1",
        clock=clock,
        chunks_per_epoch=chunks,
        model_dir=tiny_config.run.output,
    )
    (result,) = collect_results(experiment_id, "k1", "vocals")
    assert collect_results(experiment_id, "other-study", "vocals") == []
    (record,) = study_records(experiment_id, "k1").values()
    assert record.clock == clock and record.run_id == tracked.run_id
    assert record.model_dir == tiny_config.run.output.resolve()
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
