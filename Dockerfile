# The toolbox bot's image: a static binary on scratch, run as a non-root user.
#
#   docker build -t toolbox:dev .
#
# The last stage, "image", needs nothing but the binary, the CA bundle and the
# passwd entry, so `toolbox up` (and the tests) build that same stage from a
# binary compiled on the machine when no base image can be pulled.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/toolbox . \
 && mkdir -p /out/data /out/etc \
 && echo 'toolbox:x:10001:10001:toolbox:/data:/sbin/nologin' > /out/etc/passwd \
 && echo 'toolbox:x:10001:' > /out/etc/group

FROM scratch AS image
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/etc/passwd /out/etc/group /etc/
COPY --from=build --chown=10001:10001 /out/data /data
COPY --from=build /out/toolbox /toolbox
USER 10001:10001
ENV TOOLBOX_STATE=/data/toolbox.db TOOLBOX_LISTEN=0.0.0.0:8080
EXPOSE 8080
VOLUME ["/data"]
ENTRYPOINT ["/toolbox"]
CMD ["serve"]
