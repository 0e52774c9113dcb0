"""The study's statistics (statsmodels), its measurements, and the seed's numbers apart."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from tests.test_study import runs
from unmixlab.study import Baseline, Reference, summarize
from unmixlab.study.report import (
    draw_figures,
    loss_sdr_correlation,
    orientation_table,
    seed_ms_per_sample,
)
from unmixlab.study.statistics import hedges_g, noninferiority, ols, pairwise, vertex


def test_non_inferiority_is_welchs_one_sided_test_against_the_margin():
    uni, bi = [2.1, 2.4, 1.9, 2.2], [2.3, 2.5, 2.2]
    test = noninferiority(uni, bi, margin=0.5, alpha=0.05)
    shifted = [u + 0.5 for u in uni]
    larger = stats.ttest_ind(shifted, bi, equal_var=False, alternative="greater").pvalue
    smaller = stats.ttest_ind(shifted, bi, equal_var=False, alternative="less").pvalue
    assert (test.p_noninferior, test.p_inferior) == pytest.approx((larger, smaller))
    assert test.difference == pytest.approx(np.mean(uni) - np.mean(bi))
    # the 90 % interval's lower end is where the one-sided test at 5 % turns
    at_bound = noninferiority(uni, bi, margin=-test.low, alpha=0.05)
    assert at_bound.p_noninferior == pytest.approx(0.05)


def test_the_vertex_interval_covers_the_true_turning_point():
    rng = np.random.default_rng(0)
    x = np.repeat([-1.5, -0.5, 0.5, 1.5], 4)
    covered = 0
    for _ in range(300):
        y = 0.3 * x - 0.5 * x**2 + rng.normal(0, 0.2, x.size)  # vertex at 0.3
        fit = ols(y, {"h": x, "h²": x**2})
        turn = vertex(fit, "h", "h²")
        covered += turn.low <= 0.3 <= turn.high
    assert 0.9 <= covered / 300 <= 0.99  # the delta method's 95 %, within Monte-Carlo error


def test_pairwise_comparisons_are_holm_adjusted_with_effect_sizes():
    groups = {"a": [1.0, 1.2, 0.9], "b": [2.0, 2.1, 1.8], "c": [1.05, 1.1, 0.95]}
    found = pairwise(groups, [("a", "b"), ("a", "c")])
    assert [(p.a, p.b) for p in found] == [("a", "b"), ("a", "c")]
    raw = [stats.ttest_ind(groups[b], groups["a"], equal_var=False).pvalue for b in "bc"]
    assert [p.p for p in found] == pytest.approx(raw)
    assert found[0].p_holm == pytest.approx(min(1, 2 * min(raw)))
    assert found[1].p_holm == pytest.approx(max(found[0].p_holm, raw[1]))
    g = hedges_g(np.array(groups["a"]), np.array(groups["b"]))
    pooled = math.sqrt((np.var(groups["a"], ddof=1) + np.var(groups["b"], ddof=1)) / 2)
    assert g == pytest.approx((np.mean(groups["b"]) - 1.0333333) / pooled * (1 - 3 / 15), 1e-4)


def test_the_seeds_numbers_stand_apart_and_unmx_is_its_own_measurement():
    results = runs("open-unmix", [9.5, 9.6], [10.0, 11.0], sdr=2.0)
    reference = Reference(loss=9.536, time="7:50", seconds=470, sdr=2.326, sir=3.028)
    summary = dataclasses.replace(summarize(results)[0], reference=reference)
    header, rows = orientation_table([summary], [Baseline(name="UMX (Original)", sdr=7.537)], 86)
    assert header[:4] == ["model", "seed's loss", "seed's time", "seed's ms / sample"]
    assert rows[0][0] == "UMX (Original) (the seed's measurement)" and "7.537" in rows[0]
    assert rows[1][:3] == ["open-unmix", "9.536", "7:50"] and "2.326" in rows[1]
    # the seed: 470 s over 86 tracks x 16 samples x 1 epoch
    assert seed_ms_per_sample(summary, 86) == pytest.approx(1000 * 470 / (86 * 16))
    assert not any("2.00" in cell for row in rows for cell in row)  # none of ours beside it


def test_loss_against_validation_sdr_is_plotted_and_correlated():
    results = [
        dataclasses.replace(r, valid_loss=(3.0, 2.0, 1.5), valid_sdr=(0.5, 1.5, 2.5 + r.seed))
        for r in runs("base", [1.5, 1.4], [1.0, 1.0])
    ]
    summaries = summarize(results)
    sentence = loss_sdr_correlation(summaries)
    rho = stats.spearmanr([3.0, 2.0, 1.5] * 2, [0.5, 1.5, 2.5, 0.5, 1.5, 3.5]).statistic
    assert f"validation loss and validation SDR: {rho:.2f}" in sentence
    assert "6 epochs of 2 runs" in sentence
    assert "loss_vs_sdr" in [f.name for f in draw_figures(summaries)]
    assert loss_sdr_correlation(summarize(runs("base", [1.5], [1.0]))) is None


def test_the_timing_pass_measures_the_cost_per_sample(tiny_config):
    from unmixlab.model import parameter_count
    from unmixlab.study.timing import cost_per_sample, frames_per_sample

    cost = cost_per_sample("tiny", tiny_config, repeats=3, warmup=1)
    assert 0 < cost.low <= cost.ms_per_sample <= cost.high
    assert cost.cpu_ms_per_sample > 0 and cost.repeats == 3 and len(cost.load) == 2
    frames = frames_per_sample(tiny_config)
    assert frames == round(tiny_config.optim.seq_dur * 16000) // tiny_config.model.nhop + 1
    assert cost.work_per_sample == parameter_count(tiny_config.architecture()) * frames


@pytest.mark.slow
def test_a_paced_stream_counts_missed_deadlines_for_four_targets(tiny_config, synth_root: Path):
    from unmixlab.study.timing import baseline_sdr, offline_rtf, paced_stream
    from unmixlab.trainer import train

    causal = train(tiny_config.updated(unidirectional=True, epochs=1)).output
    stream = paced_stream("tiny-uni", causal, "vocals", block_hops=1, seconds=1.0)
    assert stream.targets == ("vocals", "drums", "bass", "other")
    assert stream.blocks == int(16000 // tiny_config.model.nhop)
    assert 0 < stream.p50_ms <= stream.p99_ms <= stream.worst_ms
    assert stream.block_ms == pytest.approx(1000 * tiny_config.model.nhop / 16000)
    assert 0 <= stream.missed <= stream.blocks and stream.precision == "float32"
    assert 0 < offline_rtf(causal, "vocals", 1.0) < 10
    baselines = baseline_sdr(synth_root, True, "vocals", 512, 128)
    assert baselines["oracle mask"] > baselines["mixture"]  # the mask separates, the mix does not
