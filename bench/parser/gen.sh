#!/bin/sh
# Generates a synthetic Dockerfile for the parser benchmark on stdout.
# Usage: gen.sh [LINES] [STAGES]   (defaults: 20000 lines, 500 stages)
# Global ARGs, then stages that each declare ARGs, set ENV, COPY --from earlier stages, RUN with
# cache mounts and continuation lines, LABEL/WORKDIR/EXPOSE, so every part of the plan is used.
set -eu
lines=${1:-20000}
stages=${2:-500}
awk -v lines="$lines" -v stages="$stages" 'BEGIN {
	n = 0
	for (i = 0; i < 20; i++) { printf "ARG GLOBAL_%d=value-%d\n", i, i; n++ }
	printf "ARG BASE=docker.io/library/alpine:3.20\n"; n++
	per = int((lines - n) / stages)
	if (per < 4) per = 4
	for (s = 0; s < stages && n < lines; s++) {
		start = n
		if (s == 0) printf "FROM ${BASE} AS stage0\n"
		else if (s % 7 == 0) printf "FROM stage%d AS stage%d\n", s - 1, s
		else printf "FROM ${BASE} AS stage%d\n", s
		n++
		printf "ARG GLOBAL_%d\n", s % 20; n++
		printf "ARG LOCAL_%d=local-${GLOBAL_%d}\n", s, s % 20; n++
		k = 0
		limit = (s == stages - 1) ? lines : start + per
		while (n < limit && n < lines) {
			m = k % 8
			if (m == 0) { printf "ENV PATH_%d=/opt/s%d/bin:${PATH_%d:-/usr/bin} NAME_%d=\"stage %d\"\n", k, s, k, k, s; n++ }
			else if (m == 1) { printf "WORKDIR /work/${LOCAL_%d}/%d\n", s, k; n++ }
			else if (m == 2 && s > 0) { printf "COPY --from=stage%d --chown=1000:1000 /work/ /from/%d/\n", (s * 31 + k) % s, k; n++ }
			else if (m == 3) { printf "RUN --mount=type=cache,target=/root/.cache/%d \\\n    echo building ${LOCAL_%d} step %d && \\\n    true\n", k, s, k; n += 3 }
			else if (m == 4) { printf "LABEL com.example.step%d=\"${LOCAL_%d}-%d\" com.example.stage=%d\n", k, s, k, s; n++ }
			else if (m == 5) { printf "COPY src/%d.txt dst/%d/ ./\n", k, k; n++ }
			else if (m == 6) { printf "EXPOSE %d/tcp %d/udp\n", 1000 + k, 2000 + k; n++ }
			else { printf "RUN [\"/bin/sh\", \"-c\", \"echo %d\"]\n", k; n++ }
			k++
		}
	}
}'
