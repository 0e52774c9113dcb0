"""Database URLs (MLflow's tracking store, Optuna's storage): their driver, checked up front."""

from unmixlab.errors import UnmixlabError

# URL scheme (before any '+driver') -> the extra that installs its driver
DRIVER_EXTRAS = {"postgresql": "postgres", "postgres": "postgres"}


def require_driver(url: str, what: str) -> None:
    """Refuse a database URL whose SQLAlchemy driver is not installed, naming the extra.

    Args:
        url: a SQLAlchemy URL (``postgresql://...``, ``postgresql+psycopg://...``); other
            URLs and file paths pass.
        what: what the URL is for (``the MLflow tracking store``), for the message.

    Raises:
        UnmixlabError: the driver cannot be imported.
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    extra = DRIVER_EXTRAS.get(scheme.split("+", 1)[0])
    if extra is None:
        return
    from sqlalchemy.engine import make_url

    try:
        make_url(url).get_dialect().import_dbapi()
    except ImportError as error:
        raise UnmixlabError(
            f"{what} is a PostgreSQL database, but its driver is not installed ({error})",
            f"Install it: pip install 'unmixlab[{extra}]'",
        ) from None
