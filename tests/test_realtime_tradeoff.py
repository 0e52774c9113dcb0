"""The real-time trade-off: Pareto front, table, plot, and a tiny end-to-end run."""

import json
from pathlib import Path

import pytest

from benchmarks.tradeoff_runs import train_and_score
from unmixlab.study.results import Stat
from unmixlab.study.tradeoff import (
    Setting,
    TradeoffPoint,
    pareto_front,
    read_tradeoff,
    tradeoff_table,
    write_tradeoff,
)

SLOW = Setting("causal 4096/1024", 4096, 1024, 2)
FAST = Setting("causal 1024/256", 1024, 256, 1)
WORSE = Setting("causal 2048/512", 2048, 512, 2)
OFFLINE = Setting("bidirectional 4096/1024", 4096, 1024, causal=False)
QUANTIZED = Setting("causal 4096/1024 int8", 4096, 1024, 2, precision="int8")


def points() -> list[TradeoffPoint]:
    return [
        TradeoffPoint(SLOW, Stat(5.0, 0.2, 2), 116.1, 0.12, 0.1),
        TradeoffPoint(FAST, Stat(4.0, 0.3, 2), 23.2, 0.45, 0.4),
        # slower, later and worse than the 1024-point model: dominated
        TradeoffPoint(WORSE, Stat(3.5, 0.1, 2), 58.0, 0.5, 0.45),
        TradeoffPoint(OFFLINE, Stat(6.0, 0.1, 2)),
        TradeoffPoint(QUANTIZED, Stat(4.95, 0.2, 2), 116.1, 0.06, 0.05),
    ]


def test_pareto_front_keeps_the_undominated_causal_points():
    # float32 4096/1024 stays on the front by its SDR; int8 joins it by its cost
    assert [p.setting for p in pareto_front(points())] == [FAST, SLOW, QUANTIZED]


def test_table_plot_and_json_round_trip(tmp_path: Path):
    table = tradeoff_table(points())
    rows = table.splitlines()
    assert rows[0].startswith("| setting | STFT | block | latency (ms) | stream_rtf | CPU | SDR")
    fast = (
        "| causal 1024/256 | 1024/256 | 1 hop(s) | 23.2 | 0.450 | 0.400 | 4.00 ± 0.30 | 2 | yes |"
    )
    worse = "| causal 2048/512 | 2048/512 | 2 hop(s) | 58.0 | 0.500 | 0.450 | 3.50 ± 0.10 | 2 |  |"
    assert fast in rows and worse in rows
    assert "| bidirectional 4096/1024 | 4096/1024 | whole song | offline | — | — | 6.00" in table
    out = write_tradeoff(points(), tmp_path / "tradeoff", "notes here")
    assert (out / "pareto.png").read_bytes().startswith(b"\x89PNG")
    assert "notes here" in (out / "tradeoff.md").read_text()
    assert read_tradeoff(out / "tradeoff.json") == points()
    assert json.loads((out / "tradeoff.json").read_text())["rows"][1]["stft"] == "1024/256"


@pytest.mark.slow
def test_train_and_score_compares_settings_on_the_same_data(tiny_config, tmp_path: Path):
    settings = [
        Setting("causal 256/64", 256, 64, 1),
        Setting("causal 256/64 int8", 256, 64, 1, precision="int8"),
        Setting("bi 512/128", 512, 128, causal=False),
    ]
    measured = []

    def measure(setting: Setting) -> tuple[float, float, float]:
        measured.append(setting)
        return 1000 * setting.nfft / 16000, 0.3, 0.2

    base = tiny_config.updated(epochs=1, hidden_size=8)
    result = train_and_score(base, settings, [0, 1], tmp_path / "tradeoff", measure)
    assert [p.setting for p in result] == settings
    assert measured == settings[:2]  # only causal settings stream
    assert result[0].latency_ms == 16.0 and result[2].latency_ms is None
    assert all(p.sdr.n == 2 for p in result)
    assert all(-60 < p.sdr.mean < 60 for p in result)
    assert (tmp_path / "tradeoff" / "causal-256-64" / "seed1" / "model" / "vocals.pth").is_file()
    # int8 quantizes the float32 setting's models: no second training, a close score
    assert not (tmp_path / "tradeoff" / "causal-256-64-int8" / "seed1" / "model").exists()
    assert (tmp_path / "tradeoff" / "causal-256-64-int8" / "seed1" / "evaluation").is_dir()
    assert abs(result[1].sdr.mean - result[0].sdr.mean) < 0.5
