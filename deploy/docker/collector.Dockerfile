# The farmwatch collector (build context: the repository root; see deploy/compose.yaml).
# The farm files are not in the image: compose mounts them on /etc/farmwatch/farms.
FROM python:3.11-slim
WORKDIR /opt/farmwatch
COPY pyproject.toml README.md ./
COPY farmwatch_shared ./farmwatch_shared
COPY collector ./collector
COPY edge ./edge
COPY dashboards ./dashboards
RUN pip install --no-cache-dir . && useradd --system --no-create-home farmwatch \
    && install -d -m 0750 -o farmwatch -g farmwatch /var/lib/farmwatch
# the quarantine of refused messages (compose mounts a volume here)
VOLUME /var/lib/farmwatch
USER farmwatch
CMD ["farmwatch-collector"]
