# kiln's own image: `kiln build -t kiln:dev .` (or docker build) from the repository root.
# Stage 1 builds kiln with Debian 12's toolchain and libraries; stage 2 is a small Debian runtime
# with those libraries, newuidmap/newgidmap and an unprivileged user "builder" (1000:1000) owning
# the subordinate IDs 100000-165535, so the image builds without root (see examples/ and the
# "Without root" section of kiln-build(1)).
ARG DEBIAN=debian:12-slim

FROM ${DEBIAN} AS build
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends build-essential cmake pkg-config \
      libarchive-dev libssl-dev libcurl4-openssl-dev libzstd-dev libjansson-dev zlib1g-dev \
      libdeflate-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt Makefile ./
COPY base base
COPY parser parser
COPY layers layers
COPY registry registry
COPY builder builder
COPY cli cli
COPY man man
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_TESTS=OFF \
      -DCMAKE_INSTALL_PREFIX=/usr/local \
 && cmake --build /build -j"$(nproc)" \
 && DESTDIR=/out cmake --install /build --strip

FROM ${DEBIAN}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends libarchive13 libssl3 libcurl4 libzstd1 \
      libjansson4 zlib1g libdeflate0 ca-certificates uidmap libcap2-bin \
 && rm -rf /var/lib/apt/lists/* \
 # File capabilities instead of the setuid bit: a setuid-root newuidmap needs CAP_SYS_ADMIN,
 # which an unprivileged pod does not have; with cap_setuid it acts as the user.
 && chmod 0755 /usr/bin/newuidmap /usr/bin/newgidmap \
 && setcap cap_setuid=ep /usr/bin/newuidmap \
 && setcap cap_setgid=ep /usr/bin/newgidmap \
 && useradd -m -u 1000 -U -s /bin/sh -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 builder \
 && echo builder:100000:65536 > /etc/subuid \
 && echo builder:100000:65536 > /etc/subgid \
 && mkdir -p /home/builder/.local/share/kiln /workspace \
 && chown -R builder:builder /home/builder /workspace
COPY --from=build /out/usr/local /usr/local
USER builder
WORKDIR /workspace
# The store: an emptyDir or a cache volume here keeps layers between builds.
VOLUME /home/builder/.local/share/kiln
ENTRYPOINT ["kiln"]
CMD ["--help"]
