"""`python -m federated_imputation`: serve the Django project with uvicorn on DJANGO_HOST:DJANGO_PORT."""

import uvicorn

from federated_imputation.env import env_int, env_str


def main() -> None:
    """Run uvicorn on the project's ASGI application."""
    uvicorn.run(
        "federated_imputation.asgi:application",
        host=env_str("DJANGO_HOST", "127.0.0.1"),
        port=env_int("DJANGO_PORT", 8010),
        # Django speaks no ASGI lifespan; saying so spares a confusing startup message.
        lifespan="off",
        access_log=False,
    )


if __name__ == "__main__":
    main()
