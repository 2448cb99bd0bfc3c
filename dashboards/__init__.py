"""Grafana dashboards as code: ``python -m dashboards.build`` writes ``dashboards/generated/``.

The generated JSON ships as package data (``farmwatch-grafana-push`` reads it through
``importlib.resources``) and needs nothing else; building it needs the ``dashboards`` extra
(grafana-foundation-sdk).

We build the classic (v1) dashboard JSON on purpose: it is what file provisioning and the
``/api/dashboards/db`` endpoint take on every Grafana version we target, so the SDK's
"prefer dashboardv2" deprecation notice is silenced once here.
"""

import warnings
from importlib.util import find_spec

if find_spec("grafana_foundation_sdk") is not None:  # only the builders need it
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Prefer using dashboardv2", DeprecationWarning)
        import grafana_foundation_sdk.builders.dashboard
        import grafana_foundation_sdk.models.dashboard
        import grafana_foundation_sdk.models.dashboardv2beta1  # noqa: F401
