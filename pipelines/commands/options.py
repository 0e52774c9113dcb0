"""Click options generated from pydantic fields: one flag per config field, nothing else."""

import re
import types
import typing
from collections.abc import Callable
from pathlib import Path

import click
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from unmixlab.errors import UnmixlabError


def flag_name(field: str) -> str:
    """``hidden_size`` -> ``--hidden-size``."""
    return "--" + field.replace("_", "-")


def flag_error(error: ValidationError) -> UnmixlabError:
    """One line naming the flag of the first invalid setting (``--batch-size: ...``)."""
    from unmixlab.config import GROUP_OF, GROUPS

    first = error.errors()[0]
    # a group's own check (``model``: nhop < nfft) is across settings, not a flag of its name
    fields = [str(p) for p in first["loc"] if not isinstance(p, int) and p not in GROUPS]
    message = first["msg"].removeprefix("Value error, ")
    if not fields:  # a check across settings: its message names them
        named = [flag_name(word) for word in re.findall(r"\w+", message) if word in GROUP_OF]
        flags = ", ".join(dict.fromkeys(named)) or "the flags"
        return UnmixlabError(f"invalid settings: {message}", f"Fix {flags} (see --help)")
    flag = flag_name(fields[-1])  # the field, not its group
    return UnmixlabError(f"invalid {flag}: {message}", f"Fix {flag} (see --help)")


def config_options(fields: dict[str, FieldInfo], skip: tuple[str, ...] = ()) -> Callable:
    """Decorate a click command with one option per field (default: unset)."""

    def decorate(command: Callable) -> Callable:
        for name, field in reversed(fields.items()):
            if name in skip:
                continue
            help_text = field.description or ""
            default = field.default
            shown = f"{help_text} [default: {default}]".strip()
            annotation = field.annotation
            if annotation is bool:
                opt = click.option(
                    f"{flag_name(name)}/--no-{name.replace('_', '-')}",
                    name,
                    default=None,
                    help=shown,
                )
            elif typing.get_origin(annotation) is tuple:
                opt = click.option(
                    flag_name(name), name, multiple=True, help=shown + " (repeatable)"
                )
            else:
                opt = click.option(
                    flag_name(name), name, type=_click_type(annotation), default=None, help=shown
                )
            command = opt(command)
        return command

    return decorate


def given(values: dict) -> dict:
    """The options the user actually passed (unset flags are None or empty)."""
    return {k: v for k, v in values.items() if v is not None and v != ()}


def _click_type(annotation: object) -> click.ParamType | type:
    if typing.get_origin(annotation) is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(annotation)])
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if annotation is Path:
        return click.Path(path_type=Path)
    return annotation if annotation in (int, float, str) else str


MODEL_HELP = (
    "model folder (separator.json, <target>.pth), a flow run's folder, or a flow's output "
    "folder for its latest run (runs/quickstart)"
)


class ModelFolder(click.Path):
    """A model folder, a flow run's folder (its ``model/``) or a flow's output (``latest``)."""

    def __init__(self) -> None:
        """A path, resolved by :func:`unmixlab.model_io.model_folder`."""
        super().__init__(path_type=Path)

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> Path:
        """The model folder that ``value`` names."""
        from unmixlab.model_io import model_folder

        return model_folder(super().convert(value, param, ctx))


def device_option(default: str | None = "auto", unset: str = "") -> Callable:
    """Decorate a command with ``--device`` (checked: ``auto``, ``cpu``, ``cuda``, ``cuda:N``)."""
    from unmixlab.device import DEVICE_HELP, check_device_spec

    def check(context: click.Context, param: click.Parameter, value: str | None) -> str | None:
        try:
            return value if value is None else check_device_spec(value)
        except ValueError as error:
            raise click.BadParameter(str(error)) from error

    shown = f"[default: {default or unset}]"
    return click.option("--device", default=default, callback=check, help=f"{DEVICE_HELP} {shown}")


def precision_option(auto: bool = False) -> Callable:
    """Decorate an inference command with ``--precision float32|int8``.

    With ``auto``, ``auto`` is a choice too and the default (resolved by
    :func:`unmixlab.quantize.streaming_precision`).
    """
    from unmixlab.quantize import PRECISIONS

    words = (
        "weights of the linear and LSTM layers: int8 reads a quarter of the bytes "
        "(CPU only; dynamic quantization)"
    )
    if auto:
        words += "; auto: int8 on x86 CPUs, float32 elsewhere"
    return click.option(
        "--precision",
        type=click.Choice(PRECISIONS + ("auto",) if auto else PRECISIONS),
        default="auto" if auto else "float32",
        show_default=True,
        help=words,
    )


def preset_options(default: str, example: str, flow: str | None = None) -> Callable:
    """Decorate a ``unmixlab run`` command with ``--preset`` and repeatable ``--set KEY=VALUE``.

    ``flow`` limits the presets that the help lists to those made for it.
    """
    from unmixlab.experiment import available_presets

    def decorate(command: Callable) -> Callable:
        command = click.option(
            "--set",
            "overrides",
            multiple=True,
            metavar="KEY=VALUE",
            help=f"override a preset setting, e.g. --set {example} (repeatable)",
        )(command)
        return click.option(
            "--preset",
            default=default,
            show_default=True,
            help=f"preset name ({', '.join(available_presets(flow=flow))}) or YAML file",
        )(command)

    return decorate
