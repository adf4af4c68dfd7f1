"""Settings of the Django admin project, read from the environment (see docs/development.md)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from federated_imputation.env import (
    DEFAULT_DATABASE_SERVER_URL,
    database_settings,
    env_bool,
    env_int,
    env_list,
    env_str,
    environment,
    is_placeholder_secret,
    redis_server_url,
    redis_url_with_db,
)

logger = logging.getLogger(__name__)

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE_NAME = "federated_imputation"
# Redis database numbers are shared platform-wide: 0 cache (and worker heartbeats), 1 Celery.
REDIS_CACHE_DB = 0
REDIS_CELERY_DB = 1

ENVIRONMENT = environment()
DEBUG = env_bool("DJANGO_DEBUG")

# A fixed key keeps sessions valid across restarts of a local run; it must never leave development.
DEVELOPMENT_SECRET_KEY = "django-insecure-development-only-do-not-use-in-production"  # noqa: S105
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if is_placeholder_secret(SECRET_KEY):
    if ENVIRONMENT not in ("development", "test"):
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY is missing or a placeholder; set a long random value when ENVIRONMENT={ENVIRONMENT}"
        )
    logger.warning("DJANGO_SECRET_KEY is missing or a placeholder: fine for %s only", ENVIRONMENT)
    SECRET_KEY = SECRET_KEY or DEVELOPMENT_SECRET_KEY

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "imputation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "federated_imputation.urls"
WSGI_APPLICATION = "federated_imputation.wsgi.application"
ASGI_APPLICATION = "federated_imputation.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# DJANGO_DATABASE_URL is a full URL of its own; DATABASE_URL names the shared server, whose database we swap.
_django_database_url = env_str("DJANGO_DATABASE_URL")
if _django_database_url:
    _database = database_settings(_django_database_url)
else:
    _database = database_settings(env_str("DATABASE_URL", DEFAULT_DATABASE_SERVER_URL), database_name=DATABASE_NAME)
# Served under ASGI, where persistent connections are not reused between requests, so none by default.
_database["CONN_MAX_AGE"] = env_int("DJANGO_CONN_MAX_AGE", 0)
_database["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = redis_server_url()
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": redis_url_with_db(REDIS_URL, REDIS_CACHE_DB),
        # Database 0 is shared with the other components.
        "KEY_PREFIX": "django",
    }
}

CELERY_BROKER_URL = redis_url_with_db(REDIS_URL, REDIS_CELERY_DB)
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
# The job processor's workers share Redis database 1; a queue of our own keeps them off our tasks.
CELERY_TASK_DEFAULT_QUEUE = "django"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"

SERVICE_REGISTRY_URL = env_str("SERVICE_REGISTRY_URL", "http://127.0.0.1:8002")
USER_SERVICE_URL = env_str("USER_SERVICE_URL", "http://127.0.0.1:8001")

# Django's service account (client-credentials grant on the user service) for its calls to the registry.
INTERNAL_CLIENT_ID = env_str("DJANGO_INTERNAL_CLIENT_ID", "django")
INTERNAL_CLIENT_SECRET = env_str("DJANGO_INTERNAL_CLIENT_SECRET", env_str("INTERNAL_CLIENT_SECRET"))
REGISTRY_TIMEOUT_S = float(env_str("DJANGO_REGISTRY_TIMEOUT_S", "5"))
# A push the registry did not take is retried by Celery after 2, 4, 8, ... seconds, up to this long apart.
REGISTRY_PUSH_RETRY_BACKOFF_MAX_S = env_int("DJANGO_REGISTRY_PUSH_RETRY_BACKOFF_MAX_S", 600)
REGISTRY_PUSH_MAX_RETRIES = env_int("DJANGO_REGISTRY_PUSH_MAX_RETRIES", 20)
# Health in the admin is cached by state: healthy 15 min, unhealthy 1 min, 10 s after an admin asked.
REGISTRY_HEALTH_TTL_HEALTHY_S = env_int("DJANGO_REGISTRY_HEALTH_TTL_HEALTHY_S", 900)
REGISTRY_HEALTH_TTL_UNHEALTHY_S = env_int("DJANGO_REGISTRY_HEALTH_TTL_UNHEALTHY_S", 60)
REGISTRY_HEALTH_TTL_REQUESTED_S = env_int("DJANGO_REGISTRY_HEALTH_TTL_REQUESTED_S", 10)
# The worker applies the registry's `service.changed` events (Redis database 3, the event bus).
REGISTRY_EVENTS_ENABLED = env_bool("DJANGO_REGISTRY_EVENTS_ENABLED", True)

# Admin logins are checked by the user service (one identity store); local accounts (createsuperuser) still work.
AUTHENTICATION_BACKENDS = [
    "imputation.auth.UserServiceBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "var" / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# A local run serves the apps' static files straight from their folders, so it needs no collectstatic;
# elsewhere WhiteNoise serves what collectstatic put in STATIC_ROOT.
WHITENOISE_USE_FINDERS = DEBUG or ENVIRONMENT == "development"
if WHITENOISE_USE_FINDERS:
    warnings.filterwarnings("ignore", message="No directory at")
# WhiteNoise streams files with a plain iterator, which Django's ASGI handler reads in a thread: expected.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    # Secure cookies need HTTPS end to end, which the plain-HTTP compose setup does not have: opt in.
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SESSION_COOKIE_SECURE")
    CSRF_COOKIE_SECURE = env_bool("DJANGO_CSRF_COOKIE_SECURE", SESSION_COOKIE_SECURE)
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT")
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0)
    if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER"):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
# The services' JSON lines by default, so that one log pipeline reads every component.
LOG_JSON = env_bool("LOG_JSON", True)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "microservices.common.logging.JsonFormatter", "service": "django"},
        "plain": {"format": "%(asctime)s %(levelname)s django %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json" if LOG_JSON else "plain",
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
}
