-- One database per service, owned by POSTGRES_USER. The postgres image runs this file once,
-- on the first start with an empty data volume. CREATE DATABASE has no IF NOT EXISTS, so each
-- statement is generated only for a database that is missing (psql's \gexec runs it).
SELECT format('CREATE DATABASE %I', name)
FROM unnest(ARRAY['mlflow', 'mlflow_auth', 'optuna', 'prefect']) AS name
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = name)
\gexec
