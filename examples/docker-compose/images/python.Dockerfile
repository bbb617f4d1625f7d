# schedobs and its examples: Debian's Python 3.11, a venv, the dependencies (a layer
# of their own, cached while pyproject.toml does not change), then the wheel built
# from the working tree. Nothing is installed from a mounted checkout.
FROM schedobs/base:bookworm
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
COPY requirements.txt /tmp/requirements.txt
RUN pip install -q -r /tmp/requirements.txt
COPY wheels/ /tmp/wheels/
RUN pip install -q --no-deps /tmp/wheels/*.whl && rm -rf /tmp/wheels && schedobs --help >/dev/null
COPY examples/ /app/examples/
WORKDIR /app
