"""``unmixlab promote``: make the best run's model the registry's ``champion`` if it wins."""

import click


@click.command()
@click.option("--experiment", required=True, help="MLflow experiment holding the runs")
@click.option("--metric", required=True, help="run metric to compare, e.g. test_sdr_vocals")
@click.option("--target", default="vocals", show_default=True, help="target whose model to promote")
@click.option(
    "--lower-is-better/--higher-is-better",
    default=None,
    help="direction of METRIC [default: lower for names with 'loss' or 'error', else higher]",
)
def promote(experiment: str, metric: str, target: str, lower_is_better: bool | None) -> None:
    """Register the best finished run's model as unmixlab-TARGET; move 'champion' if it wins."""
    from unmixlab.step_settings import PromoteSettings
    from unmixlab.steps.promote import promote as promote_step

    greater_is_better = None if lower_is_better is None else not lower_is_better
    settings = PromoteSettings(metric=metric, greater_is_better=greater_is_better)
    result = promote_step(settings, experiment, target)
    champion = "none" if result.champion_value is None else f"{result.champion_value:.5g}"
    click.echo(
        f"{result.model_name} v{result.version}: {result.decision} "
        f"({metric} {result.candidate_value:.5g} vs champion {champion})"
    )
