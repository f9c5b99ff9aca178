# billctl container image: the image that k8s-cronjob.yaml names (ghcr.io/billctl/billctl:<version>).
#
#   docker build -t ghcr.io/billctl/billctl:0.1.0 .
#   docker run --rm ghcr.io/billctl/billctl:0.1.0 --version
#
# Two stages: the builder installs the runtime dependencies from requirements.lock (exact versions,
# hash-checked: a rebuilt image gets the same packages, the same Stripe SDK and so the same pinned API
# version), then the package itself without resolving anything; the runtime stage copies only that
# virtualenv onto the same slim base. `make lock` refreshes the lock. Every dependency ships manylinux wheels
# (psycopg[binary], hiredis), so no compiler is needed in either stage.
# No secret is baked in: the database URL and password, the Redis password and the Stripe key come
# from the environment at run time (see docs/how-to/kubernetes.md).
# Runs as the fixed non-root UID/GID 10001 and works with a read-only root filesystem: the only
# writable place it needs is /tmp (an emptyDir in Kubernetes, `--tmpfs /tmp` with docker run).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/billctl

WORKDIR /src
# Only what the build needs (.dockerignore keeps the rest of the checkout out of the context).
COPY requirements.lock ./
RUN /opt/billctl/bin/pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY billctl ./billctl
# pip byte-compiles the installed modules here, so the read-only runtime never needs to write .pyc files.
RUN /opt/billctl/bin/pip install --no-cache-dir --no-deps . \
    && /opt/billctl/bin/billctl --version


FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="billctl" \
      org.opencontainers.image.description="Billing operations for SaaS: metered usage to exact invoices and Stripe" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# HOME and TMPDIR point at /tmp: the one writable mount under a read-only root filesystem.
ENV PATH="/opt/billctl/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    LANG=C.UTF-8

RUN groupadd --system --gid 10001 billctl \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin billctl \
    && mkdir -p /data \
    && chown 10001:10001 /data

COPY --from=builder /opt/billctl /opt/billctl

# The working directory is where the embedded defaults put a SQLite file (sqlite:///billctl.db) when no
# database is configured: writable by the billctl user in a plain `docker run` (mount a volume to keep it).
# In Kubernetes the database is PostgreSQL and the root filesystem is read-only.
WORKDIR /data

# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

ENTRYPOINT ["billctl"]
CMD ["--help"]
