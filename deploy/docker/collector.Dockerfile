# The farmwatch collector (build context: the repository root; see deploy/compose.yaml).
FROM python:3.11-slim
WORKDIR /opt/farmwatch
COPY pyproject.toml README.md ./
COPY farmwatch_shared ./farmwatch_shared
COPY collector ./collector
COPY edge ./edge
COPY farmwatch_emulators ./farmwatch_emulators
COPY farmwatch_local ./farmwatch_local
COPY dashboards ./dashboards
COPY firmware_configs ./firmware_configs
RUN pip install --no-cache-dir . && useradd --system --no-create-home farmwatch
USER farmwatch
CMD ["farmwatch-collector"]
