"""Service registry: external imputation services, their reference panels, and their health."""
