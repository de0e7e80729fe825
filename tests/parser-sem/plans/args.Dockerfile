ARG A=global-a
ARG B
FROM scratch AS one
RUN echo "A is not visible here"
ARG A
ARG B=stage-b
ARG C=${A}-${B}
ENV PATH=/usr/bin:/bin D=${C:-none}
WORKDIR /w/${D}
ENV A=from-env
ARG A=shadowed-by-env
WORKDIR ${A}/${UNSET:-fallback}/${C%-*}/${C#*-}/${C/-/+}
FROM one AS two
WORKDIR ${D}/${C:-no-c-here}
VOLUME /data ${D}
STOPSIGNAL SIGTERM
