# One image for every Python component of the platform: the seven FastAPI services, the Django admin and the
# Celery workers differ only in their command (see docker-compose.microservices.yml and docs/development.md).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid/gid, so that files written to the shared volumes have the same owner in every container.
ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" app \
    && useradd --system --uid "${APP_UID}" --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so that a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
# /data/* are the mount points of the named volumes: a fresh named volume copies their ownership from the image,
# so the app user can write to it. The code itself stays owned by root, read-only for the app.
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info \
    && mkdir -p /data/files /data/static \
    && chown -R app:app /data

USER app

EXPOSE 8000 8001 8002 8003 8004 8005 8006 8010

# No default command on purpose: compose (or Kubernetes) names the component to run.
CMD ["python", "-c", "import sys; sys.exit('choose a component command, see docs/development.md')"]
