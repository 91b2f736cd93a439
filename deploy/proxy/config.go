package proxy

import (
	"encoding/json"
	"strconv"
)

// How the Caddy container is run. The deploy code creates it with these
// values; the Proxy finds it through them.
const (
	// ContainerName is the Caddy container's alias on the machine's Docker
	// network, and the host the Proxy names in its admin requests.
	ContainerName = "caddy"
	// AdminPort is the admin API's port inside the container when it listens
	// on TCP (AdminTCP, for tests): publish it on 127.0.0.1 only, never on a
	// public address, as the admin API has no authentication. The toolbox's
	// own deployment uses AdminUnix instead.
	AdminPort = 2019
	// AdminOrigin is the Origin header the Proxy sends; it is in the admin
	// listener's origins list (see ContainerConfig).
	AdminOrigin = "http://" + ContainerName + ":2019"
	// ConfigFile is where ContainerConfig goes in the container.
	ConfigFile = "/etc/caddy/caddy.json"
	// DataDir is the mount point of the named volume holding Caddy's state:
	// certificates, ACME accounts, the local CA and the last config.
	DataDir = "/data"
	// ServerName is the name of the HTTP server in Caddy's config that
	// carries the apps' routes.
	ServerName = "toolbox"
	// RouteIDPrefix starts the @id of each app's route.
	RouteIDPrefix = "toolbox-app-"
)

// Certificate authorities used when Options.Local is false. Let's Encrypt
// first, then ZeroSSL when there is an account email (ZeroSSL's ACME needs
// one): Caddy's own default issuers (caddytls.DefaultIssuers).
const (
	letsEncryptCA = "https://acme-v02.api.letsencrypt.org/directory"
	zeroSSLCA     = "https://acme.zerossl.com/v2/DV90"
)

// Where the admin API listens (see ContainerConfig).
const (
	AdminTCP = "0.0.0.0:2019"
	// AdminSocketDir is the mount point of the volume holding the socket.
	AdminSocketDir = "/run/caddy-admin"
	AdminSocket    = AdminSocketDir + "/admin.sock"
	// AdminUnix is the socket, writable by the toolbox's user: only the two
	// containers that mount its volume see it.
	AdminUnix = "unix/" + AdminSocket + "|0666"
)

// ContainerCommand is the Caddy container's command. With --resume Caddy
// starts from the config it saved last (under DataDir, see ContainerEnv), so
// the apps' routes survive a restart of the container even before the
// toolbox runs again; the first time, it starts from ConfigFile.
// /usr/bin/caddy is where the official image has the binary.
func ContainerCommand() []string {
	return []string{"/usr/bin/caddy", "run", "--config", ConfigFile, "--resume"}
}

// ContainerEnv is the Caddy container's environment: Caddy's data and
// config directories (certificates, autosave.json) both in the DataDir
// volume. A FROM scratch image has no HOME, no /tmp and no /config.
func ContainerEnv() map[string]string {
	return map[string]string{
		"XDG_DATA_HOME":   DataDir,
		"XDG_CONFIG_HOME": DataDir + "/config",
		"HOME":            DataDir,
	}
}

// ContainerConfig is the Caddy JSON config the Caddy container starts with
// (at ConfigFile): the admin listener, storage under DataDir, the toolbox
// server without routes, and TLS automation with Caddy's internal CA when
// local is true, ACME otherwise (without an account email: Init sets
// Options.Email).
//
// The admin listener, adminListen, is AdminUnix in the toolbox's own
// deployment: a unix socket in a volume that only the Caddy and toolbox
// containers mount, so that the apps, which share a Docker network with
// Caddy, cannot reach the admin API at all. Tests use AdminTCP, published on
// 127.0.0.1 only. On a wildcard TCP address Caddy stops checking the Host
// header (admin.go: enforceHost), so the Origin check is what stands between
// the admin API and a web browser on the same machine: enforce_origin makes
// Caddy refuse every request whose Origin (or Referer) is not in the origins
// list, and a browser cannot forge Origin; the toolbox sends AdminOrigin. The
// list has no scheme, so it is compared by host and port only.
func ContainerConfig(local bool, adminListen string) []byte {
	cfg := baseConfig(local, "")
	cfg["admin"] = map[string]any{
		"listen":         adminListen,
		"enforce_origin": true,
		"origins": []any{
			ContainerName + ":" + strconv.Itoa(AdminPort),
			"localhost:" + strconv.Itoa(AdminPort),
			"127.0.0.1:" + strconv.Itoa(AdminPort),
		},
	}
	cfg["storage"] = map[string]any{"module": "file_system", "root": DataDir + "/caddy"}
	b, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	return append(b, '\n')
}

// baseConfig is the part of Caddy's config the toolbox manages: the HTTP
// server and TLS automation.
func baseConfig(local bool, email string) map[string]any {
	apps := map[string]any{
		"http": map[string]any{"servers": map[string]any{ServerName: baseServer()}},
		"tls":  map[string]any{"automation": map[string]any{"policies": tlsPolicies(local, email)}},
	}
	if local {
		apps["pki"] = localPKI()
	}
	return map[string]any{"apps": apps}
}

// baseServer is the toolbox server, without routes.
//
// It listens on :443 only. Caddy's automatic HTTPS then adds a server of its
// own on :80 ("remaining_auto_https_redirects") that redirects every
// plain-HTTP request to HTTPS and answers ACME HTTP-01 challenges. Listening
// on :80 here too would put the redirects in this server after the routes
// with a host matcher (autohttps.go: findLastRouteWithHostMatcher), so the
// apps would be served in plain HTTP on :80 as well.
//
// h3 is left out: the Docker engine publishes the TCP ports only, and
// advertising HTTP/3 on a UDP port nobody can reach makes browsers try it
// first for nothing.
func baseServer() map[string]any {
	return map[string]any{
		"listen":    []any{":443"},
		"protocols": []any{"h1", "h2"},
		"routes":    []any{},
	}
}

// tlsPolicies is the TLS automation for every name: Caddy's internal CA when
// local, else ACME.
func tlsPolicies(local bool, email string) []any {
	var issuers []any
	switch {
	case local:
		issuers = []any{map[string]any{"module": "internal"}}
	case email == "":
		issuers = []any{map[string]any{"module": "acme", "ca": letsEncryptCA}}
	default:
		issuers = []any{
			map[string]any{"module": "acme", "ca": letsEncryptCA, "email": email},
			map[string]any{"module": "acme", "ca": zeroSSLCA, "email": email},
		}
	}
	return []any{map[string]any{"issuers": issuers}}
}

// localPKI keeps Caddy from trying to add its local CA to the container's
// trust store (there is none in the image, and it would only log an error):
// clients get the root from RootCA instead.
func localPKI() map[string]any {
	return map[string]any{"certificate_authorities": map[string]any{
		"local": map[string]any{"install_trust": false},
	}}
}
