"""Django app of the admin UI: imputation services and their reference panels."""
