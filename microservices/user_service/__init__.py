"""User service: accounts, login, tokens, roles, groups, permissions, audit log, external credentials."""
