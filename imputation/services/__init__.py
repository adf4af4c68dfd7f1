"""Business logic of the `imputation` app, kept out of views, admin classes and tasks."""
