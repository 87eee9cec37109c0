# The fusionrec worker image (used by docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY encoders encoders
COPY agents agents
COPY streams streams
# fusionrec.testing (contract checks, media writers) is installed with the package, as numpy.testing is
COPY tests/support tests/support
RUN pip install --no-cache-dir .
ENV HF_HUB_OFFLINE=1
CMD ["fusionrec", "worker", "--role", "all"]
