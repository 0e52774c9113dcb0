"""Static checks of the platform files: compose stack, image, MLflow launcher, Prefect deployments.

Nothing here needs Docker or a network; the launcher runs against a stub ``mlflow`` command.
"""

import ast
import configparser
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
COMPOSE = INFRA / "docker-compose.yml"
START_SERVER = ROOT / "mlflow" / "start-server.sh"

SERVICES = {
    "postgres",
    "minio",
    "minio-create-bucket",
    "mlflow",
    "prefect-server",
    "prefect-worker",
}
HEALTHCHECKED = {"postgres", "minio", "mlflow", "prefect-server"}
FLOW_ENTRYPOINTS = {
    "pipelines/training.py:training",
    "pipelines/tuning.py:tuning",
    "pipelines/study.py:study",
    "pipelines/study.py:study_training",  # one training of a study, on the work pool
}
# ${VAR}, ${VAR:-default}, ${VAR:?error}; "$$" escapes a variable for the container's shell
COMPOSE_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
UNBRACED_VARIABLE = re.compile(r"(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def env_example() -> dict[str, str]:
    values = {}
    for line in (INFRA / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def image_tag(image: str) -> str | None:
    name = image.split("@")[0].rsplit("/", 1)[-1]
    return name.split(":", 1)[1] if ":" in name else None


def dockerfile_args() -> dict[str, str]:
    text = (INFRA / "Dockerfile").read_text()
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", text, flags=re.MULTILINE))


# --- compose stack ------------------------------------------------------------------------------


def test_compose_defines_the_platform_services(services):
    assert set(services) == SERVICES


def test_every_image_is_pinned(services):
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} has no image"
        assert "$" not in image, f"{name}: the image must not come from a variable"
        tag = image_tag(image)
        assert tag, f"{name}: {image} has no tag"
        assert tag != "latest" and not tag.startswith("latest-"), f"{name}: {image} floats"


def test_project_image_matches_the_package_version(services):
    for name in ("mlflow", "prefect-worker"):
        assert services[name]["image"] == f"unmixlab:{project_version()}"
        assert services[name]["build"]["dockerfile"] == "infra/Dockerfile"
        assert (INFRA / services[name]["build"]["context"] / "pyproject.toml").is_file()


def test_worker_clients_match_the_server_versions(services):
    prefect_tag = image_tag(services["prefect-server"]["image"])
    build_args = services["prefect-worker"]["build"]["args"]
    assert prefect_tag.startswith(f"{build_args['PREFECT_VERSION']}-")
    # the Dockerfile's own defaults build the same image without compose
    assert dockerfile_args()["PREFECT_VERSION"] == build_args["PREFECT_VERSION"]
    assert dockerfile_args()["MLFLOW_VERSION"] == build_args["MLFLOW_VERSION"]


@pytest.mark.parametrize(
    ("service", "probe"),
    [
        ("postgres", "pg_isready"),
        ("minio", "ready"),
        ("mlflow", "/health"),
        ("prefect-server", "/api/health"),
    ],
)
def test_health_checks(services, service, probe):
    check = services[service]["healthcheck"]
    test = check["test"]
    assert test[0] in {"CMD", "CMD-SHELL"}
    assert probe in " ".join(test)
    assert check["retries"] >= 3 and check["interval"]


def test_depends_on_waits_for_health_and_completion(services):
    expected = {
        "minio-create-bucket": {"minio": "service_healthy"},
        "mlflow": {
            "postgres": "service_healthy",
            "minio": "service_healthy",
            "minio-create-bucket": "service_completed_successfully",
        },
        "prefect-server": {"postgres": "service_healthy"},
        "prefect-worker": {"prefect-server": "service_healthy", "mlflow": "service_healthy"},
    }
    for name, dependencies in expected.items():
        declared = services[name]["depends_on"]
        assert {dep: spec["condition"] for dep, spec in declared.items()} == dependencies
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits on unchecked {dep}"


def test_compose_variables_are_all_in_env_example():
    text = COMPOSE.read_text()
    used = set(COMPOSE_VARIABLE.findall(text))
    example = env_example()
    assert used - set(example) == set(), "add these to infra/.env.example"
    assert set(example) - used == set(), "infra/.env.example lists variables compose never uses"
    # a bare $VAR would be interpolated by compose, not by the container's shell
    assert UNBRACED_VARIABLE.findall(text) == []


def test_env_example_holds_no_real_secrets():
    for name, value in env_example().items():
        if re.search(r"PASSWORD|SECRET", name) and value:
            assert value.startswith("change-me"), f"{name} must be a change-me placeholder"


def test_bucket_is_created_before_mlflow_uses_it(services):
    job = services["minio-create-bucket"]
    script = "\n".join(job["command"])
    assert re.search(r"mc mb --ignore-existing \"local/\$\$MINIO_BUCKET\"", script)
    assert job["image"].startswith("minio/mc:")
    assert job["restart"] == "no"
    bucket = job["environment"]["MINIO_BUCKET"]
    mlflow_env = services["mlflow"]["environment"]
    assert mlflow_env["MLFLOW_ARTIFACTS_BUCKET"] == bucket
    # the server holds the bucket user's keys; the worker holds none
    assert mlflow_env["AWS_ACCESS_KEY_ID"] == "${MLFLOW_S3_ACCESS_KEY}"
    assert "AWS_SECRET_ACCESS_KEY" not in services["prefect-worker"]["environment"]


def test_mlflow_service_runs_the_launcher_with_postgres_and_proxied_artifacts(services):
    mlflow = services["mlflow"]
    assert mlflow["command"] == ["bash", "mlflow/start-server.sh"]
    env = mlflow["environment"]
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    # the worker calls http://mlflow:5000: that Host header must pass the server's check
    assert "mlflow:*" in env["MLFLOW_ALLOWED_HOSTS"]
    assert "mlflow:*" in env_example()["MLFLOW_ALLOWED_HOSTS"].split(",")
    assert env["MLFLOW_AUTH"].startswith("${MLFLOW_AUTH")


def test_databases_in_urls_are_created_by_initdb(services):
    sql = next((INFRA / "initdb").glob("*.sql")).read_text()
    created = set(re.findall(r"'(\w+)'", sql.split("ARRAY[", 1)[1].split("]", 1)[0]))
    assert {"mlflow", "optuna", "prefect"} <= created
    urls = "\n".join(
        str(value)
        for service in services.values()
        for value in service.get("environment", {}).values()
    )
    used = set(re.findall(r"@postgres:5432/(\w+)", urls))
    used.add(services["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_NAME"])
    assert {"mlflow", "optuna", "prefect"} <= used <= created


def test_database_passwords_stay_out_of_urls(services):
    assert ":${POSTGRES_PASSWORD}@" not in COMPOSE.read_text()
    for name in ("mlflow", "prefect-worker"):
        assert services[name]["environment"]["PGPASSWORD"] == "${POSTGRES_PASSWORD}"
    assert "./initdb:/docker-entrypoint-initdb.d:ro" in services["postgres"]["volumes"]


def test_worker_polls_the_process_pool_and_reaches_every_service(services):
    worker = services["prefect-worker"]
    command = worker["command"]
    assert command[:3] == ["prefect", "worker", "start"]
    assert command[command.index("--pool") + 1] == "unmixlab-process"
    assert command[command.index("--type") + 1] == "process"
    env = worker["environment"]
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["UNMIXLAB_PROJECT_DIR"] == "/app"
    assert env["UNMIXLAB_TUNE_STORAGE"].startswith("postgresql+psycopg2://")


def test_published_ports_bind_to_the_configured_address(services):
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), f"{name}: {port}"


def test_dockerfile_builds_the_cpu_image():
    text = (INFRA / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, flags=re.MULTILINE)
    assert "ffmpeg" in text
    assert "--extra-index-url" in text and "download.pytorch.org/whl/cpu" in text
    assert re.search(r"^USER unmixlab$", text, flags=re.MULTILINE)
    # what the compose commands and prefect.yaml need inside the image
    for path in ("mlflow/", "prefect.yaml", "pipelines/", "src/"):
        assert re.search(rf"^COPY {re.escape(path)}", text, flags=re.MULTILINE), path
    # the context filter lets exactly those in, and keeps local secrets out
    ignore = (INFRA / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignore and "mlflow/*.env" in ignore
    for path in ("mlflow/", "prefect.yaml", "pipelines/", "src/"):
        assert f"!{path}" in ignore, path


# --- MLflow launcher ------------------------------------------------------------------------------


def test_mlflow_folder_is_not_a_package():
    assert not (ROOT / "mlflow" / "__init__.py").exists()
    assert not list((ROOT / "mlflow").glob("*.py")), "Python files here would shadow mlflow"


def test_start_server_script_parses():
    assert os.access(START_SERVER, os.X_OK)
    subprocess.run(["bash", "-n", str(START_SERVER)], check=True)


def run_launcher(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run start-server.sh with a stub ``mlflow`` that records its arguments and auth config."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    record = tmp_path / "args"
    stub = bin_dir / "mlflow"
    stub.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > "{record}"\n'
        'if [ -n "$MLFLOW_AUTH_CONFIG_PATH" ]; then\n'
        f'  cp "$MLFLOW_AUTH_CONFIG_PATH" "{tmp_path}/auth.ini"\n'
        "fi\n"
    )
    stub.chmod(0o755)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    clean["PATH"] = f"{bin_dir}{os.pathsep}{clean['PATH']}"
    clean["TMPDIR"] = str(tmp_path)
    result = subprocess.run(
        ["bash", str(START_SERVER)],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=20,
    )
    args = record.read_text().splitlines() if record.exists() else []
    return result, args


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_launcher_defaults_to_sqlite_and_local_artifacts(tmp_path):
    result, args = run_launcher(tmp_path)
    assert result.returncode == 0, result.stderr
    assert args[0] == "server"
    assert option(args, "--backend-store-uri") == "sqlite:///mlflow.db"
    assert option(args, "--host") == "127.0.0.1"
    assert option(args, "--port") == "5000"
    assert "--serve-artifacts" in args
    assert option(args, "--artifacts-destination") == str((tmp_path / "mlartifacts").resolve())
    assert "--allowed-hosts" not in args and "--app-name" not in args


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_launcher_proxies_artifacts_to_the_bucket(tmp_path):
    result, args = run_launcher(
        tmp_path,
        MLFLOW_BACKEND_STORE_URI="postgresql+psycopg2://u:p@db:5432/mlflow",
        MLFLOW_ARTIFACTS_BUCKET="unmixlab",
        MLFLOW_ALLOWED_HOSTS="mlflow,mlflow:*",
        MLFLOW_HOST="0.0.0.0",
    )
    assert result.returncode == 0, result.stderr
    assert option(args, "--backend-store-uri") == "postgresql+psycopg2://u:p@db:5432/mlflow"
    assert option(args, "--artifacts-destination") == "s3://unmixlab/mlartifacts"
    assert option(args, "--allowed-hosts") == "mlflow,mlflow:*"
    assert "--serve-artifacts" in args
    assert not (tmp_path / "mlartifacts").exists()
    # the database password is not echoed to the log
    assert "u:p@" not in result.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_launcher_basic_auth_needs_a_secret_key(tmp_path):
    result, args = run_launcher(tmp_path, MLFLOW_AUTH="basic")
    assert result.returncode == 2
    assert "MLFLOW_FLASK_SERVER_SECRET_KEY" in result.stderr
    assert args == []


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_launcher_basic_auth_takes_its_database_from_the_environment(tmp_path):
    uri = "postgresql+psycopg2://u:p%40ss@db:5432/mlflow_auth"
    result, args = run_launcher(
        tmp_path,
        MLFLOW_AUTH="basic",
        MLFLOW_FLASK_SERVER_SECRET_KEY="test-key",
        MLFLOW_AUTH_DATABASE_URI=uri,
    )
    assert result.returncode == 0, result.stderr
    assert option(args, "--app-name") == "basic-auth"
    # read back the way MLflow reads it (with %-interpolation)
    rendered = configparser.ConfigParser()
    rendered.read(tmp_path / "auth.ini")
    assert rendered["mlflow"]["database_uri"] == uri
    assert rendered["mlflow"]["default_permission"] == "READ"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_launcher_rejects_an_unknown_auth_mode(tmp_path):
    result, _ = run_launcher(tmp_path, MLFLOW_AUTH="oauth")
    assert result.returncode == 2
    assert "MLFLOW_AUTH" in result.stderr


# --- Prefect deployments --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prefect_project() -> dict:
    return yaml.safe_load((ROOT / "prefect.yaml").read_text())


def test_prefect_yaml_deploys_the_flows(prefect_project):
    deployments = prefect_project["deployments"]
    assert {d["entrypoint"] for d in deployments} == FLOW_ENTRYPOINTS
    full_names = [f"{d['entrypoint'].rsplit(':', 1)[1]}/{d['name']}" for d in deployments]
    assert len(set(full_names)) == len(full_names)
    for deployment in deployments:
        path, _, function = deployment["entrypoint"].partition(":")
        assert re.fullmatch(r"pipelines/\w+\.py", path) and function.isidentifier()
        assert deployment["work_pool"]["name"] == "unmixlab-process"
        if function != "study_training":  # the study flow gives that one all its parameters
            assert deployment["parameters"]["preset"]
        # when the flow module exists, it defines the flow with these parameters (read, not run)
        source = ROOT / path
        if source.exists():
            definitions = [
                node
                for node in ast.parse(source.read_text()).body
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.name == function
            ]
            assert definitions, f"{path} defines no {function}()"
            arguments = definitions[0].args
            names = {a.arg for a in arguments.args + arguments.kwonlyargs}
            assert set(deployment.get("parameters", {})) <= names, deployment["entrypoint"]


def test_prefect_yaml_pulls_into_the_project_directory(prefect_project, services):
    (step,) = prefect_project["pull"]
    directory = step["prefect.deployments.steps.set_working_directory"]["directory"]
    assert directory == "{{ $UNMIXLAB_PROJECT_DIR }}"
    assert "UNMIXLAB_PROJECT_DIR" in services["prefect-worker"]["environment"]
    assert prefect_project["build"] is None and prefect_project["push"] is None


def test_prefect_yaml_pins_the_server_version(prefect_project, services):
    tag = image_tag(services["prefect-server"]["image"])
    assert tag.startswith(f"{prefect_project['prefect-version']}-")


@pytest.mark.slow  # MLflow's first start migrates a fresh database: 10-30 s
@pytest.mark.integration
@pytest.mark.skipif(shutil.which("mlflow") is None, reason="needs the mlflow command")
def test_launcher_starts_a_real_server(tmp_path):
    import socket
    import time
    import urllib.request

    folder = tmp_path / "server"  # a folder without a store: the launcher creates it
    folder.mkdir()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    env.update(MLFLOW_PORT=str(port), MLFLOW_WORKERS="1")
    server = subprocess.Popen(
        ["bash", str(START_SERVER)],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert r.read() == b"OK"
                    break
            except OSError:
                assert time.monotonic() < deadline, "the server did not answer /health in 60 s"
                time.sleep(0.3)
        assert (folder / "mlflow.db").is_file()
        assert (folder / "mlartifacts").is_dir()
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
