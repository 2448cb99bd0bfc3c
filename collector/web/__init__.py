"""``farmwatch-web``: the operators' phone page, server-rendered (docs/web.md)."""
