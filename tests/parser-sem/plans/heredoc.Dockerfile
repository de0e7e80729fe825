FROM alpine AS base
ARG NAME=world
COPY <<EOF /etc/greeting
hello ${NAME}
EOF
COPY <<'RAW' /etc/raw
hello ${NAME}
RAW
RUN <<EOF
set -e
echo $NAME > /name
EOF
ONBUILD RUN echo triggered
SHELL ["/bin/sh", "-ec"]
MAINTAINER kiln <kiln@example.com>
