# syntax=docker/dockerfile:1
# kep: one base image for every command (kep run, kep lag-exporter, kep topology apply, kep produce).
#
#   docker build -t kep:0.1.0 .
#   docker run --rm kep:0.1.0 --help
#
# It holds kep and no service: a service builds its own image FROM this one, adding its schemas, topology
# and handler modules (docs/deploy.md; examples/shop/Dockerfile is one). The embedded broker, a test tool,
# is not installed (the `embedded` extra is left out of KEP_EXTRAS).
#
# The final stage holds only the runtime: a virtual environment built from the project's wheel with the
# runtime extras (no dev dependencies), owned by root and run as uid 10001. It works with a read-only root
# filesystem: the only paths it writes are /tmp and /var/lib/kep (the SQLite idempotency store), which the
# platform mounts (tmpfs, emptyDir or a volume).

ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# Only what the wheel is built from (.dockerignore keeps caches, venvs and tests out of the context).
COPY pyproject.toml ./
COPY schemas/ schemas/
COPY topology/ topology/
COPY producers/ producers/
COPY consumers/ consumers/
COPY kep/ kep/

# redis and postgres: the shared idempotency stores; registry: the Confluent Schema Registry client;
# console: the operator console (kep console); ingest: FastAPI and uvicorn for `kep ingest`; schedules: the cron
# parser of the topology's `schedules:`.
ARG KEP_EXTRAS=redis,postgres,registry,console,ingest,schedules
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python -m venv /opt/kep \
 && /opt/kep/bin/pip install "$(ls /wheels/kep_kafka-*.whl)[${KEP_EXTRAS}]" \
 && /opt/kep/bin/kep --help >/dev/null

# ---------------------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS runtime

ARG KEP_UID=10001
RUN groupadd --system --gid "${KEP_UID}" kep \
 && useradd --system --uid "${KEP_UID}" --gid kep --home-dir /var/lib/kep --no-create-home \
        --shell /usr/sbin/nologin kep \
 && install -d -o kep -g kep -m 0750 /var/lib/kep

COPY --from=builder /opt/kep /opt/kep

# HOME points at the writable data directory so nothing tries to write under a read-only /home.
ENV PATH=/opt/kep/bin:${PATH} \
    HOME=/var/lib/kep \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KEP_IDEMPOTENCY_STORE=sqlite:////var/lib/kep/idempotency.db \
    KEP_LOG_FORMAT=json

WORKDIR /var/lib/kep
# Numeric, so Kubernetes can verify runAsNonRoot without resolving a user name.
USER 10001:10001

# 9400: kep run (/metrics, /healthz, /readyz); 9401: kep lag-exporter (the same plus /groups).
EXPOSE 9400 9401

ENTRYPOINT ["kep"]
CMD ["--help"]
