# slawatch container: the locked runtime dependencies (the PostgreSQL extra included, so a
# fleet member runs from it), then the wheel, run as non-root.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY probe ./probe
COPY classifier ./classifier
COPY sla ./sla
COPY incidents ./incidents
COPY notify ./notify
COPY config ./config
COPY slawatch ./slawatch
RUN pip wheel --no-deps -w /dist .

FROM python:3.11-slim
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-cache-dir -r /tmp/requirements.lock
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir --no-deps /tmp/*.whl && rm /tmp/*.whl /tmp/requirements.lock \
    && useradd --system --uid 10001 --home-dir /var/lib/slawatch --create-home slawatch
USER 10001
WORKDIR /var/lib/slawatch
EXPOSE 9797
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9797/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["slawatch"]
CMD ["run", "--config", "/etc/slawatch/slawatch.yaml"]
