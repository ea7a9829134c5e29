# countwatch in a container, for docker-compose.yml (the daemon and the simulated feed).
FROM python:3.11-slim

WORKDIR /src
# Only what the package needs: no venv, no tests, no state.
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY alerts ./alerts
RUN pip install --no-cache-dir . \
    && useradd --system --home-dir /var/lib/countwatch countwatch \
    && mkdir -p /var/lib/countwatch \
    && chown countwatch /var/lib/countwatch

# Not root: countwatch only needs to write its state directory.
USER countwatch
WORKDIR /var/lib/countwatch
ENTRYPOINT ["countwatch"]
CMD ["run", "-c", "/etc/countwatch/countwatch.toml"]
