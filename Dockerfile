# One image for ringflow's API, worker and migrations (docker-compose.yml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . .
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app ringflow

USER ringflow
EXPOSE 8080
CMD ["ringflow", "api"]
