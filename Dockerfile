# One image for ringflow's API, worker, media bridge and migrations (docker-compose.yml picks
# the command: `ringflow api`, `ringflow worker`, `python -m media.server`, `ringflow migrate`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . .
# The recordings directory exists in the image and belongs to the service user, so that the
# compose volume mounted there starts with that owner (Docker copies it into a new volume).
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app ringflow \
    && mkdir -p /var/lib/ringflow/recordings \
    && chown -R ringflow /var/lib/ringflow

USER ringflow
# 8080 API (/healthz, /readyz, /metrics); 8090 media bridge control API (/healthz, /readyz,
# /metrics); 9464 a worker's metrics (RINGFLOW_WORKER_METRICS_ADDRESS). The bridge's ICE
# ports are UDP from the kernel's ephemeral range, on each node's own address.
EXPOSE 8080 8090 9464
CMD ["ringflow", "api"]
