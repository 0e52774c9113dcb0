"""Welch's t-test behind every verdict, and the report's comparison with the seed."""

import dataclasses

import pytest
from scipy import stats

from tests.test_study import context, runs, seed_like
from unmixlab.report import (
    draw_figures,
    loss_sdr_correlation,
    render_markdown,
    seed_ms_per_sample,
    separation_table,
)
from unmixlab.study import Baseline, Reference, Stat, summarize, verdicts
from unmixlab.study.statistics import describe_test, direction, one_sample, welch


def test_welch_from_summaries_equals_scipy_on_the_raw_values():
    a, b = [10.0, 10.4, 9.7, 10.1], [9.1, 9.9, 9.4]
    test = welch(Stat.of(a), Stat.of(b))
    expected = stats.ttest_ind(b, a, equal_var=False)
    assert test.t == pytest.approx(expected.statistic)
    assert test.p == pytest.approx(expected.pvalue)
    assert (test.n_a, test.n_b) == (4, 3)
    assert direction(test, 0.05) == (-1 if expected.pvalue < 0.05 else 0)
    assert direction(test, expected.pvalue / 2) == 0
    assert welch(Stat.of([1.0]), Stat.of(b)) is None and direction(None, 0.05) is None


def test_one_sample_test_against_real_time():
    values = [0.41, 0.45, 0.39]
    test = one_sample(Stat.of(values), 1.0)
    assert test.p == pytest.approx(stats.ttest_1samp(values, 1.0).pvalue)
    assert direction(test, 0.05) == -1
    assert describe_test(test).endswith("t-test over 3 seeds")


def test_every_verdict_sentence_names_its_p_values_and_seeds():
    h1 = verdicts(seed_like(9.5, 6.0, 12.0), 0.05)[0]
    assert "p < 0.0001, Welch's t-test over 3 + 3 seeds" in h1.sentence
    assert "against proportional scaling" in h1.sentence
    close = verdicts(seed_like(9.5, 9.45, 12.0), 0.05)[0]  # within the spread
    assert close.outcome == "inconclusive"
    p = stats.ttest_ind([9.45, 9.55, 9.35], [9.5, 9.6, 9.4], equal_var=False).pvalue
    assert f"p = {p:.2g}" in close.sentence


def test_separation_table_puts_the_seed_beside_ours():
    results = runs("open-unmix", [9.5, 9.6], [10.0, 11.0], sdr=2.0)
    results = [dataclasses.replace(r, sir=3.0 + r.seed, samples_per_epoch=64) for r in results]
    reference = Reference(loss=9.536, time="7:50", seconds=470, sdr=2.326, sir=3.028)
    summary = dataclasses.replace(summarize(results)[0], reference=reference)
    header, rows = separation_table([summary], [Baseline(name="UMX (Original)", sdr=7.537)])
    assert header[:3] == ["configuration", "SDR (dB)", "SIR (dB)"] and "seed's SDR" in header
    assert rows[0][0] == "UMX (Original) (published)" and "7.537" in rows[0]
    assert rows[1][:3] == ["open-unmix", "2.00 ± 0.0071", "3.50 ± 0.71"]
    assert "2.326" in rows[1] and "3.028" in rows[1]
    # the seed: 470 s over 86 tracks x 16 samples x 1 epoch
    assert seed_ms_per_sample(summary, 86) == pytest.approx(1000 * 470 / (86 * 16))
    assert summary.ms_per_sample.mean == pytest.approx(1000 * 10.5 / 64)
    text = render_markdown(context(), [summary], [], (), image_dir="")
    assert "## Separation quality beside the seed's" in text
    ratio = (1000 * 10.5 / 64) / (1000 * 470 / (86 * 16))
    assert f"×{ratio:.3g}" in text


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
