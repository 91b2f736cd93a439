# The toolbox bot's image: a static binary on scratch, run as a non-root user.
#
#   docker build -t toolbox:dev .
#
# The last stage, "image", needs nothing but the binary, the CA bundle and the
# passwd entry, so `toolbox up` (and the tests) build that same layout from a
# binary compiled on the machine when no base image can be pulled: it is
# written once in host/layout.go, and host's TestDockerfileMatchesLayout
# checks this file against it.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/toolbox . \
 && mkdir -p /out/etc && mkdir -m 700 /out/data && mkdir -m 1777 /out/tmp \
 && echo 'toolbox:x:10001:10001:toolbox:/data:/sbin/nologin' > /out/etc/passwd \
 && echo 'toolbox:x:10001:' > /out/etc/group

FROM scratch AS image
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/etc/passwd /out/etc/group /etc/
COPY --from=build --chown=10001:10001 /out/data /data
COPY --from=build /out/tmp /tmp
COPY --from=build /out/toolbox /toolbox
USER 10001:10001
ENV TOOLBOX_STATE=/data/toolbox.db
ENV TOOLBOX_LISTEN=0.0.0.0:8080
WORKDIR /data
EXPOSE 8080
VOLUME ["/data"]
ENTRYPOINT ["/toolbox"]
CMD ["serve"]
